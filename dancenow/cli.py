"""The `dancenow` command line: the roof.

It only parses arguments and calls each package's entry function, importing it lazily so that
`dancenow serve` never loads the trainer. Every command is a plain function that tests call
directly. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from dancenow.engines.sizes import add_size_argument
from dancenow.errors import DanceNowError


def _size(s: str) -> tuple[int, int] | int:
    if s.strip().isdigit():
        return int(s)
    try:
        h, w = (int(v) for v in s.lower().replace("x", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x192 (height x width) or 512 (the long side), "
                                         f"got {s!r}") from None
    return h, w


def _default_bundle(target: str | None) -> Path:
    """The bundle the user gave (a folder, or the name of a target `make-target` made, which wins
    over a built-in of the same name), or a built-in demo target (`demo`, the default, or
    `demo-hd`: built from its committed checkpoint)."""
    from dancenow.demo import assets
    from dancenow.targets import named_target

    if target and not Path(target).exists() and (named := named_target(target)):
        return named
    if target and (Path(target).exists() or target not in assets.BUILT_IN):
        return Path(target)  # a folder; anything else is refused where it is opened
    from dancenow.export.bundle_cache import ensure_bundle

    checkpoint, half = assets.BUILT_IN[target or "demo"]
    return ensure_bundle(checkpoint, assets.demo_bundle_dir(target or "demo"), half=half)


# --- commands (each a function of parsed args) -------------------------------------------------

def cmd_pose(a: argparse.Namespace) -> None:
    from dancenow.realtime.pose_video import pose_video

    pose_video(a.input, a.out, holistic=a.holistic, label_size=a.size)


def cmd_bench(a: argparse.Namespace) -> None:
    from dancenow.realtime.bench import command

    command.run(a, _default_bundle)


def cmd_prepare(a: argparse.Namespace) -> None:
    from dancenow.training.prepare import PrepareConfig, prepare

    if not a.synthetic and not a.video:
        raise DanceNowError("give a target video (`dancenow prepare VIDEO --out DIR`) or --synthetic")
    cfg = PrepareConfig(holdout=a.holdout, frames=a.frames, face_lines=not a.face_dots, clean_room=a.clean_room)
    if isinstance(a.size, int):  # the long side: 512 is HD's (sides multiples of its generator's 16)
        cfg.long_side, cfg.multiple = a.size, 16 if a.size >= 512 else cfg.multiple
    elif a.size:
        cfg.size = a.size
    prepare(a.video, a.out, cfg, synthetic=a.synthetic)


def cmd_train(a: argparse.Namespace) -> None:
    from dancenow.training.trainer import train

    train(a.data_dir, a.out, profile=a.profile, steps=a.steps, face_steps=a.face_steps,
          vgg_weights=a.vgg_weights, seed=a.seed, temporal=not a.no_temporal, face=not a.no_face,
          checkpoint_every=a.checkpoint_every, bf16=a.bf16, minutes=a.minutes, enhance_steps=a.enhance_steps)


def cmd_make_target(a: argparse.Namespace) -> None:
    from dancenow.export.make_target import MakeTargetConfig, make_target

    bundle = make_target(a.video, a.name, MakeTargetConfig(minutes=a.minutes, profile=a.profile, targets=a.targets))
    print(f"dancenow: target {a.name!r} is ready: dancenow serve --target {a.name}   (bundle: {bundle})")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from dancenow.training.evaluate import evaluate, format_table

    target = None
    if (Path(a.run) / "manifest.json").is_file() or a.backend != "torch":
        # A bundle (or a non-torch backend): the roof opens the Target, training never imports engines.
        from dancenow.realtime.live.target import Target

        if not (Path(a.run) / "manifest.json").is_file():
            raise DanceNowError(f"--backend {a.backend} runs a target bundle, and {a.run} is not one: "
                                f"export it first (`dancenow export {a.run}`) and evaluate the bundle")
        target = Target.open(a.run, backend=a.backend, threads=None)
    report = evaluate(a.run, a.data_dir, a.out, backend=a.backend, target=target, upscaled=a.upscaled)
    print(format_table(report))


def cmd_ablation(a: argparse.Namespace) -> None:
    from dancenow.training.ablation import format_table, run_ablation

    print(format_table(run_ablation(a.data_dir, a.out, steps=a.steps, face_steps=a.face_steps,
                                    profile=a.profile, seed=a.seed)))


def cmd_export(a: argparse.Namespace) -> None:
    from dancenow.export.exporter import ExportConfig, export

    cfg = ExportConfig(
        formats=tuple(f.strip() for f in a.format.split(",") if f.strip()), precision=a.precision,
        calib=a.calib, opset=a.opset, simplify=a.simplify, workspace=a.workspace, device=a.device,
        name=a.name, force=a.force, half=a.half,
    )
    export(a.checkpoint, a.out, cfg)


def cmd_run(a: argparse.Namespace) -> None:
    from dancenow.realtime.run import run

    run(a.source, _default_bundle(a.target), out=a.out, window=a.window, layout=a.layout,
        backend=a.backend, seconds=a.seconds, calibration=a.calibration, background=a.background,
        virtual_camera=_virtual_camera(a), size=a.size)


def _virtual_camera(a: argparse.Namespace):
    """The --virtual-camera options as a config (None when not asked for); checked before any work."""
    if a.virtual_camera is None:
        return None
    from dancenow.realtime.live.virtualcam import VirtualCameraConfig

    return VirtualCameraConfig(backend=a.virtual_camera, name=a.camera_name, framing=a.framing)


def add_live_args(s: argparse.ArgumentParser) -> None:
    """The options of the commands that run a target live: its size, the virtual camera."""
    add_size_argument(s)
    s.add_argument("--virtual-camera", nargs="?", const="auto", default=None,
                   choices=("auto", "pipewire", "pyvirtualcam"),
                   help="also offer the target as a camera for Zoom, Meet, Teams, OBS or a browser: PipeWire on "
                        "Linux (auto), or pyvirtualcam (v4l2loopback; OBS's virtual camera on Windows and macOS)")
    s.add_argument("--framing", choices=("full", "call"), default="full",
                   help="the virtual camera's picture: the full body, or head and torso at 16:9 for a call tile")
    s.add_argument("--camera-name", default="dancenow", help="the PipeWire camera node's name (default dancenow)")


def cmd_calibrate(a: argparse.Namespace) -> None:
    from dancenow.realtime.calibrate import calibrate

    calibrate(a.source, a.out, seconds=a.seconds)


def cmd_serve(a: argparse.Namespace) -> None:
    from dancenow.realtime.serve.command import serve
    from dancenow.realtime.serve.config import ServeConfig
    from dancenow.realtime.serve.encoder import parse_bitrate

    # checked before the target is built: a bad --publish URL or --bitrate fails at once
    cfg = ServeConfig(target=None, source=a.source, host=a.host, port=a.port, backend=a.backend, size=a.size, layout=a.layout,
                      background=a.background, token=a.token, max_peers=a.max_peers, bitrate=parse_bitrate(a.bitrate),
                      publish=tuple(a.publish or ()), publish_token=a.publish_token, stamp=a.stamp,
                      virtual_camera=_virtual_camera(a))
    cfg.target = _default_bundle(a.target)
    serve(cfg)


def cmd_demo(a: argparse.Namespace) -> None:
    from dancenow.demo.webcam import run_demo

    run_demo(a.source, [_default_bundle(t) for t in (a.target or [None])], backend=a.backend, background=a.background)


def cmd_transfer(a: argparse.Namespace) -> None:
    from dancenow.realtime.transfer import TransferConfig, transfer, write_demo_performer

    config = TransferConfig(layout=a.layout, mark=not a.no_mark, backend=a.backend, strip=a.strip,
                            strip_frames=a.strip_frames, background=a.background)
    if a.source != "demo":
        transfer(a.source, _default_bundle(a.target), a.out, config)
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = write_demo_performer(Path(tmp) / "performer.mp4")
        transfer(source, _default_bundle(a.target), a.out, config)


# --- parser ------------------------------------------------------------------------------------

BACKENDS = ["auto", "tensorrt", "openvino", "onnxruntime", "torch"]
LAYOUTS = ["target", "side-by-side"]
BACKGROUND_HELP = ("behind the person (targets trained with cpu-realtime v2): plate (the target's own room), "
                   "green, blue, black, white (a flat key colour for OBS) or an image file")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dancenow", description="Real-time Everybody Dance Now.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("pose", help="track a video or camera and write frame | label map side by side")
    s.add_argument("input", help="a video file or camera:N")
    s.add_argument("-o", "--out", required=True, help="output .mp4")
    s.add_argument("--holistic", action="store_true", help="track hands and face too (slower)")
    s.add_argument("--size", type=_size, default=None, help="label map size HxW (default: frame size)")
    s.set_defaults(func=cmd_pose)

    s = sub.add_parser("bench", help="benchmarks: pose, engines, live, web, soak, budgets, desk")
    from dancenow.realtime.bench.command import add_arguments

    add_arguments(s)
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("prepare", help="turn a target video into training data")
    s.add_argument("video", nargs="?", default=None)
    s.add_argument("--out", required=True, help="data folder")
    s.add_argument("--size", type=_size, default=None, help="model resolution HxW, or the long side (512: HD)")
    s.add_argument("--holdout", type=float, default=0.15, help="fraction of frames held out (the tail)")
    s.add_argument("--frames", type=int, default=None, help="synthetic: number of frames")
    s.add_argument("--synthetic", action="store_true", help="the built-in synthetic target, no footage")
    s.add_argument("--face-dots", action="store_true",
                   help="draw the face as the body model's 11 dots, not as lines from the face mesh")
    s.add_argument("--clean-room", action="store_true",
                   help="paint burnt-in subtitles and other room that changes with nobody there out of the "
                        "target's plate, and train it so (a still room live; unlike the real frames there)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("make-target", help="one video to a named target: check, prepare, train to a time budget, "
                       "evaluate, export (run again to resume)")
    s.add_argument("video", help="the target person's video: head to feet in view, a steady camera, varied movement")
    s.add_argument("--name", required=True, help="the target's name (letters, digits, - and _): serve --target NAME")
    s.add_argument("--minutes", type=float, default=10.0, help="the whole chain's budget, export included (default 10)")
    s.add_argument("--profile", choices=["cpu-realtime", "cpu-hd", "cpu-realtime-v1"], default="cpu-realtime")
    s.add_argument("--targets", default=None, help="where named targets live (default ~/.cache/dancenow/targets, "
                   "or $DANCENOW_TARGETS)")
    s.set_defaults(func=cmd_make_target)

    s = sub.add_parser("train", help="train a target's generator (and face stage)")
    s.add_argument("data_dir")
    s.add_argument("--out", required=True, help="run folder (resumes when it holds a checkpoint)")
    s.add_argument("--profile", choices=["cpu-realtime", "cpu-hd", "cpu-realtime-v1", "gpu-quality"], default="cpu-realtime")
    s.add_argument("--steps", type=int, default=None, help="generator steps (default: the profile's)")
    s.add_argument("--enhance-steps", type=int, default=None, help="cpu-hd: enhancer steps (default: the profile's)")
    s.add_argument("--face-steps", type=int, default=None, help="face stage steps (default: the profile's)")
    s.add_argument("--minutes", type=float, default=None, help="a wall-clock budget instead of step counts: the "
                   "steps are set from the measured speed (the face stage gets the last share: 15%% of the time, cpu-hd 25%%)")
    s.add_argument("--vgg-weights", default=None, help="local VGG19 weights for the perceptual loss")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-temporal", action="store_true", help="ablation: no previous-frame input")
    s.add_argument("--no-face", action="store_true", help="skip the face stage")
    s.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default: the profile's)")
    s.add_argument("--bf16", action="store_true",
                   help="bf16 autocast and channels_last on a CPU with native bf16 (AVX512_BF16 or AMX)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="score a trained target on its held-out frames")
    s.add_argument("run", help="run folder, checkpoint or bundle")
    s.add_argument("data_dir")
    s.add_argument("-o", "--out", required=True, help="report folder")
    s.add_argument("--backend", default="torch", choices=BACKENDS)
    s.add_argument("--upscaled", nargs=2, metavar=("RUN", "DATA"), default=None,
                   help="a lower-resolution target of the same clip and its data: upscaled, as an extra row")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("ablation", help="plain vs temporal vs temporal+face, at equal steps and seed")
    s.add_argument("data_dir")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--profile", choices=["cpu-realtime", "cpu-realtime-v1", "gpu-quality"], default="cpu-realtime")
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--face-steps", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_ablation)

    s = sub.add_parser("export", help="checkpoint to a verified target bundle (same as export-engine)")
    add_export_args(s)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("run", help="the live pipeline without a server, to a file or a window")
    s.add_argument("--source", default="demo", help="webcam:N, a video file, or demo")
    s.add_argument("--target", default=None, help="target bundle (default: the built-in demo target)")
    s.add_argument("--out", default=None, help="write the output to this .mp4")
    s.add_argument("--window", action="store_true", help="show an OpenCV window")
    s.add_argument("--layout", choices=LAYOUTS, default="target")
    s.add_argument("--backend", choices=BACKENDS, default="auto")
    s.add_argument("--seconds", type=float, default=None, help="stop after this long")
    s.add_argument("--calibration", default=None, help="performer statistics from `dancenow calibrate`")
    s.add_argument("--background", default="plate", help=BACKGROUND_HELP)
    add_live_args(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("calibrate", help="record the performer's body statistics to a file")
    s.add_argument("--source", default="webcam:0")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--seconds", type=float, default=10.0)
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("serve", help="the WebRTC server: viewer page at /, performer page at /perform")
    s.add_argument("--target", default=None, help="target bundle (default: the built-in demo target)")
    s.add_argument("--source", default="demo", help="webcam:N, a video file, browser, or demo")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--backend", choices=BACKENDS, default="auto")
    s.add_argument("--layout", choices=LAYOUTS, default="target")
    s.add_argument("--token", default=None, help="token to perform and switch targets (default: random)")
    s.add_argument("--background", default="plate", help=BACKGROUND_HELP)
    s.add_argument("--max-peers", type=int, default=8)
    s.add_argument("--bitrate", default="1M", help="VP8 bitrate of the one stream every viewer gets (and of "
                   "RTMP's H.264): bits/s like 1500k or 2M (default 1M)")
    s.add_argument("--publish", action="append", metavar="URL", help="also publish the stream: a WHIP endpoint "
                   "(https://HOST/whip/ENDPOINT) or RTMP (rtmp://HOST/APP/KEY); repeat for several")
    s.add_argument("--publish-token", default=None, help="bearer token for the WHIP endpoint")
    s.add_argument("--stamp", action=argparse.BooleanOptionalAction, default=None, help="paint the latency stamp "
                   "(black and white blocks) into the top of the frames (default: on, off when publishing)")
    add_live_args(s)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("demo", help="live webcam demo in a window: performer | pose | target")
    s.add_argument("--source", default="webcam:0")
    s.add_argument("--target", action="append", default=None, help="bundle (repeat to switch with T)")
    s.add_argument("--backend", choices=BACKENDS, default="auto")
    s.add_argument("--background", default="plate", help=BACKGROUND_HELP)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("transfer", help="a whole source video onto the target, offline")
    s.add_argument("source", help="a video file, or demo (the built-in performer, one loop)")
    s.add_argument("--target", default=None, help="target bundle (default: the built-in demo target)")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--layout", choices=LAYOUTS, default="target")
    s.add_argument("--backend", choices=BACKENDS, default="auto")
    s.add_argument("--no-mark", action="store_true", help="leave out the visible 'synthetic' mark")
    s.add_argument("--background", default="plate", help=BACKGROUND_HELP)
    s.add_argument("--strip", default=None, help="also write a PNG strip of performer | pose | target rows")
    s.add_argument("--strip-frames", type=int, default=3, help="rows in the strip")
    s.set_defaults(func=cmd_transfer)
    return p


def add_export_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("checkpoint", help="a checkpoint file or a training run folder")
    s.add_argument("--out", required=True, help="bundle folder to write")
    s.add_argument("--format", default="onnx,ort-int8,openvino,openvino-int8", help="comma list of onnx, ort-int8, openvino, openvino-int8, tensorrt")
    s.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32", help="TensorRT precision")
    s.add_argument("--calib", default=None, help="the target's prepared data folder (calibration, parity)")
    s.add_argument("--opset", type=int, default=17)
    s.add_argument("--simplify", action=argparse.BooleanOptionalAction, default=True)
    s.add_argument("--workspace", type=float, default=4.0, help="TensorRT memory pool limit, GiB")
    s.add_argument("--device", default="cpu", help="cpu or cuda:N")
    s.add_argument("--name", default=None, help="target name (default: from the checkpoint)")
    s.add_argument("--force", action="store_true", help="write an INT8 model even below the parity threshold")
    s.add_argument("--half", default=None, help="HD: the same target trained at half the size, as the bundle's half size")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except DanceNowError as e:
        print(f"dancenow: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dancenow: interrupted", file=sys.stderr)
        return 130
    return 0


def export_engine_main(argv: list[str] | None = None) -> int:
    """`export-engine`: the same as `dancenow export`."""
    return main(["export", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
