# BUILD-file macros (pants.toml [GLOBAL].build_file_prelude_globs).


def service_pex(name, entry_point, dependencies):
    """A service's PEX, `<name>`, plus its two halves, which its image is built from so that a
    code-only change rebuilds one small layer: `<name>-deps` (third-party requirements only,
    unchanged by code changes, so Docker keeps that layer and its build step) and `<name>-srcs`
    (Forge's own sources only, small and quick to repackage). All include the PEX tools, which
    the image uses to unpack them into a venv (PEX_TOOLS=1)."""
    common = dict(entry_point=entry_point, include_tools=True, dependencies=dependencies)
    pex_binary(name=name, execution_mode="venv", **common)
    pex_binary(name=f"{name}-deps", include_sources=False, **common)
    pex_binary(name=f"{name}-srcs", include_requirements=False, **common)
