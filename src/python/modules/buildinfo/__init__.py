"""What build of Forge this is: the release version and the git revision it was built from."""

import os
from importlib import resources

VERSION = resources.files(__name__).joinpath("VERSION").read_text(encoding="utf-8").strip()

# Images set FORGE_GIT_REVISION at build time; a source checkout has no fixed revision.
GIT_REVISION = os.environ.get("FORGE_GIT_REVISION", "unknown")
