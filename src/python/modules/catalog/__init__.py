"""The model catalog: models.json, the models Forge offers, and its sync into the `models`
table. A published (name, version) is never edited in place: a change is a new version."""
