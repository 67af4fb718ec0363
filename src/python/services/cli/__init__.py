"""`forge`, the command line of Forge's API: models, jobs (submit, follow, cancel) and artifacts
(download, verified), built as forge.pex."""
