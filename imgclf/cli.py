"""The ``imgclf`` command: train, classify, inspect models, fetch demo data.

Each subcommand is a thin layer over a public function (``models.training.train``,
``beam_pipelines.batch.run``, ...), so what the CLI does, code and tests can do too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

from imgclf import launch
from models.errors import ImgclfError, Unavailable, describe, exit_code
from models.logging_setup import configure_logging
from models.settings import get_settings
from models.train_config import TrainConfig


def _train(args: argparse.Namespace) -> int:
    from models.evaluation import accuracy_text
    from models.registry import ModelRegistry
    from models.training import train

    s = get_settings()
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None}
    try:
        config = TrainConfig.from_yaml(
            args.config, **fields, max_image_bytes=s.max_image_bytes, max_image_pixels=s.max_image_pixels
        )
        result = train(config, ModelRegistry(args.model_root or s.model_root))
    except (ValueError, FileNotFoundError) as e:
        if isinstance(e, ImgclfError):
            raise  # main() gives its family's exit code
        print(f"error: {describe(e, 2000)}", file=sys.stderr)
        return 2
    card = result.card
    test = card.metrics.get("test", {})
    shown = f"test {accuracy_text(test)}, macro-F1 {test['macro_f1']:.4f}" if test.get("count") else "no test split"
    print(
        f"{card.name} version {card.version} ({card.label_spec.task.value}, {len(card.label_spec.labels)} labels): "
        f"{shown}; aliases set: {', '.join(result.aliases_set)}"
    )
    for runtime, check in card.runtimes.items():
        print(f"{runtime} {check.precision} artifact: {'registered' if check.passed else 'refused'} ({check.reason})")
    plan = card.training.get("plan")
    if plan:
        print(
            f"recipe: {plan['rung']}, {card.training['seconds'] / 60:.1f} min of a "
            f"{plan['budget_seconds'] / 60:.1f} min budget (imgclf models show {card.name} for the plan)"
        )
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    """Self-supervised pretraining on unlabelled images; prints the `imgclf train` line that uses the result."""
    from imgclf.image_source import read_image_source
    from models.pretrain_config import PretrainConfig
    from models.registry import check_name

    s = get_settings()
    check_name(args.model)
    output = args.output or f"{s.data_dir.rstrip('/')}/backbones/{args.model}/backbone.npz"
    if "://" not in output:
        output = os.path.abspath(output)
    fields = {k: getattr(args, k) for k in ("epochs", "budget", "image_size", "seed", "views")}
    try:
        config = PretrainConfig(
            **{k: v for k, v in fields.items() if v is not None},
            max_image_bytes=s.max_image_bytes,
            max_image_pixels=s.max_image_pixels,
        )
    except ValueError as e:
        print(f"error: {describe(e, 2000)}", file=sys.stderr)
        return 2
    from models.training.pretrain import pretrain, refuse_existing

    refuse_existing(output)  # before reading a single image
    found = read_image_source(args.images, max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels)
    print(f"{len(found.images)} images from {args.images}, {len(found.skipped)} unreadable (skipped)", flush=True)
    result = pretrain(found.images, config, output, skipped=found.skipped)
    loss = result.history["loss"]
    print(
        f"pretrained backbone ({result.images} images, {result.skipped} skipped, {result.epochs_run} epochs, "
        f"loss {loss[0]:.4f} -> {loss[-1]:.4f}, {result.seconds / 60:.1f} min, stopped: {result.stopped}) "
        f"saved to {result.output} (details: {result.sidecar})"
    )
    size = f" --image-size {config.image_size}" if config.image_size != 224 else ""
    print(
        f"next: imgclf train --manifest LABELLED.csv --model {args.model}{size} --backbone-weights {result.output}\n"
        f"  or in a retraining config: trainer: {{backbone_weights: {result.output}}}"
    )
    return 0


def _classify(argv: list[str]) -> int:
    from beam_pipelines import batch

    return batch.run(argv)


def _stream(argv: list[str]) -> int:
    from beam_pipelines import streaming

    return streaming.run(argv)


def _publish(args: argparse.Namespace) -> int:
    from imgclf.image_source import image_uris
    from imgclf.publish import publish

    uris = image_uris(args.images)
    topic = args.topic
    if not topic.startswith("projects/"):
        if not args.project:
            print(f"error: write projects/PROJECT/topics/{topic} or pass --project", file=sys.stderr)
            return 2
        topic = f"projects/{args.project}/topics/{topic}"
    total = args.count or len(uris)
    print(f"publishing {total} messages about {len(uris)} images to {topic} at {args.rate:g}/s")
    report = publish(
        topic,
        uris,
        rate=args.rate,
        raw=args.raw,
        count=args.count,
        on_progress=lambda r: print(f"  {r.published} sent, {r.published / max(r.seconds, 1e-9):.1f}/s", flush=True),
    )
    print(f"published {report.published} ({report.failed} failed) in {report.seconds:.1f}s, {report.rate:.1f}/s")
    return 0 if not report.failed else 5


def _labels(args: argparse.Namespace) -> int:
    """Import images and predictions into the label store; export the corrections retraining reads."""
    from labeling_dashboard.imports import import_paths
    from labeling_dashboard.store import LabelStore
    from models.locations import check_output

    store = LabelStore(args.db or get_settings().labels_db)
    if args.action == "import":
        if not args.paths:
            print("error: name what to import: an image folder, a manifest or a prediction output", file=sys.stderr)
            return 2
        report = import_paths(
            store,
            args.paths,
            relative_to=args.relative_to,
            all_or_nothing=args.all_or_nothing,
            model_root=args.model_root,
        )
        print(
            f"{report.images} new images, {report.predictions} predictions, {report.annotations} labels, "
            f"{len(report.bad_rows)} bad rows"
            + (" (skipped; --all-or-nothing imports none)" if report.bad_rows else "")
        )
        for reason in report.bad_rows[:20]:
            print(f"  {reason}")
        return 0 if not report.bad_rows else 2
    if not args.output:
        print("error: export needs --output FILE", file=sys.stderr)
        return 2
    check_output(args.output, inputs=[], internal=get_settings().internal_stores())
    count = store.export_corrections(args.output)
    print(f"{count} labelled images -> {args.output}")
    return 0


def _models(args: argparse.Namespace) -> int:
    """List, show, promote or roll back; a broken version or alias is listed with its reason (main() maps failures)."""
    from models.registry import ModelRegistry

    registry = ModelRegistry(args.model_root or get_settings().model_root)
    if args.action == "promote":
        if args.version is None:
            print("error: promote needs --version N", file=sys.stderr)
            return 2
        name, alias = args.name or registry.default_model(), args.alias or "production"
        registry.resolve(name, version=args.version)  # a missing or broken version is refused
        before = registry.alias(name, alias)
        registry.set_alias(name, alias, args.version)
        print(f"{name}: {alias} moved from {f'v{before}' if before else 'nowhere'} to v{args.version}")
        return 0
    if args.action == "rollback":
        name = args.name or registry.default_model()
        current = registry.alias(name, args.alias or "production")
        version = registry.rollback(name, args.alias or "production")
        print(f"{name}: {args.alias or 'production'} moved from v{current} back to v{version}")
        return 0
    if args.action == "list":
        names = registry.models()
        if not names:
            print(f"no models under {registry.root}")
        for name in names:
            statuses = registry.inspect(name)
            aliases, broken_aliases = registry.alias_table(name)
            print(
                f"{name}: versions {[s.version for s in statuses]}, aliases "
                f"{', '.join(f'{a}={v}' for a, v in sorted(aliases.items())) or 'none'}"
            )
            # each reason names itself: "model 'x' version 2 is broken: ...", "alias 'y' of model 'x' ..."
            for reason in [s.reason for s in statuses if not s.ok] + sorted(broken_aliases.values()):
                print(f"  {reason}")
        return 0
    name = args.name or registry.default_model()
    resolved = registry.resolve(name, args.alias, args.version)
    print(json.dumps({"aliases": registry.aliases(name), **resolved.card.model_dump(mode="json")}, indent=2))
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from retraining.lock import RunLocked
    from retraining.pipeline import RetrainConfig, format_summary, run_once

    config = RetrainConfig.from_yaml(
        args.config,
        model_name=args.model,
        manifest=args.manifest,
        corrections=args.corrections,
        model_root=args.model_root,
        lineage_url=args.lineage_url,
    )
    if args.every:
        from retraining.scheduler import parse_every, run_forever

        iterations = 1 if args.once else None
        run_forever(config, parse_every(args.every), args.min_new_labels, args.poll_seconds, iterations)
        return 0
    if args.once:
        print("error: --once goes with --every (one check: run if due, else exit)", file=sys.stderr)
        return 2
    try:
        summary = run_once(config)
    except RunLocked as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    print(format_summary(summary))
    return 0 if summary.status == "succeeded" else 1


def _serve(args: argparse.Namespace) -> int:
    from api.server import serve

    env = {
        name: str(value)
        for name, value in {
            "IMGCLF_MODEL_ROOT": args.model_root,
            "IMGCLF_SERVE_MODELS": args.models,
            "IMGCLF_INSECURE": "true" if args.insecure else None,
        }.items()
        if value is not None
    }
    serve(args.host, args.port, args.workers, env)
    return 0


def _dashboard(argv: list[str]) -> int:
    """Streamlit's flags (``--server.port 8502``) pass through; see labeling_dashboard/launch.py."""
    if argv[:1] in (["-h"], ["--help"]):
        print(
            "usage: imgclf dashboard [--insecure] [STREAMLIT FLAGS ...]\n\n"
            "The labeling dashboard on http://127.0.0.1:8501 over IMGCLF_LABELS_DB. Streamlit's own flags\n"
            "pass through (--server.port 8502, --server.address 0.0.0.0). With no sign-in configured\n"
            "(IMGCLF_DASHBOARD_USERS, IMGCLF_TRUSTED_USER_HEADER) it stays on loopback unless --insecure."
        )
        return 0
    from labeling_dashboard.launch import streamlit_command
    from labeling_dashboard.settings import get_dashboard_settings

    command = streamlit_command(argv, get_dashboard_settings())
    os.execv(command[0], command)
    return 0  # not reached


def _dashboard_user(args: argparse.Namespace) -> int:
    import getpass

    from labeling_dashboard.auth import add_user
    from labeling_dashboard.settings import get_dashboard_settings

    path = args.users or get_dashboard_settings().dashboard_users
    if not path:
        print("error: name the users file with --users or IMGCLF_DASHBOARD_USERS", file=sys.stderr)
        return 2
    password = (
        sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
    )
    add_user(path, args.name, password, args.role)
    print(f"{args.name} ({args.role}) -> {path}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from models.datasets import write_elpv

    out = args.out or f"{get_settings().data_dir}/elpv-{args.task}"
    paths = write_elpv(out, args.task, limit=args.limit, seed=args.seed)
    print(json.dumps(paths, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    def default(field: str):  # TrainConfig owns the defaults; the help only shows them
        return TrainConfig.model_fields[field].default

    def pretrain_default(field: str):
        from models.pretrain_config import PretrainConfig

        return PretrainConfig.model_fields[field].default

    parser = argparse.ArgumentParser(prog="imgclf", description="Image classification: train, classify, manage models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="More log output.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="Train a model on a manifest or image folder and register a new version.")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="CSV with image_uri,labels[,split] (labels ';'-separated).")
    src.add_argument("--data", dest="data_dir", help="Image-folder tree: DIR/<label>/<image>.")
    t.add_argument("--model", dest="model_name", required=True, help="Model name in the registry.")
    t.add_argument("--config", help="YAML with any training parameter (models/train_config.py); flags override it.")
    t.add_argument("--class-weights", choices=["none", "balanced"], help="Default: none.")
    t.add_argument("--task", choices=["binary", "multiclass", "multilabel"], help="Default: inferred from the labels.")
    t.add_argument(
        "--labels",
        type=lambda text: [label.strip() for label in text.split(",")],
        help="Comma-separated label order (binary: negative,positive). Default: the production version's, else sorted.",
    )
    t.add_argument(
        "--allow-new-labels",
        action="store_true",
        default=None,
        help="Accept labels the production version does not have.",
    )
    t.add_argument(
        "--backbone",
        choices=typing.get_args(TrainConfig.model_fields["backbone"].annotation),
        help=f"Default: {default('backbone')}.",
    )
    t.add_argument(
        "--budget",
        help="Wall-clock budget, e.g. 10m, 90s, 1h: train picks the best recipe that fits this machine "
        "(default: 1 s per training image plus 2 min, 3-30 min; printed at the start).",
    )
    t.add_argument(
        "--recipe",
        choices=typing.get_args(TrainConfig.model_fields["recipe"].annotation),
        help="auto (default): plan within the budget; fast: a head on frozen features only (seconds).",
    )
    t.add_argument(
        "--backbone-weights",
        help="A backbone from `imgclf pretrain` (local or gs://) instead of the ImageNet weights.",
    )
    t.add_argument("--image-size", type=int, help="Input size in pixels (default: the backbone's).")
    t.add_argument(
        "--epochs",
        type=int,
        help=f"Head epochs on frozen features, early-stopped on validation loss (default {default('epochs')}).",
    )
    t.add_argument(
        "--fine-tune-epochs",
        type=int,
        help="Then fine-tune the top backbone blocks for this many epochs (default 0: skip).",
    )
    t.add_argument(
        "--fine-tune-from-block",
        type=int,
        help=f"First EfficientNet block (0-16) to unfreeze (default {default('fine_tune_from_block')}).",
    )
    t.add_argument(
        "--pooling",
        choices=typing.get_args(TrainConfig.model_fields["pooling"].annotation),
        help="Global pooling of the backbone's features (default: the plan's; gem where it fine-tunes).",
    )
    t.add_argument(
        "--openvino",
        choices=typing.get_args(TrainConfig.model_fields["openvino"].annotation),
        help="OpenVINO artifact to export and gate beside the SavedModel (default f32; bf16 opts in to reduced "
        "precision, judged by test accuracy).",
    )
    t.add_argument("--batch-size", type=int, help=f"Default {default('batch_size')}.")
    t.add_argument("--learning-rate", type=float, help=f"Head learning rate (default {default('learning_rate')}).")
    t.add_argument("--seed", type=int, help=f"Default {default('seed')}.")
    t.add_argument(
        "--skip-bad-rows",
        action="store_true",
        default=None,
        help="Train without unreadable images instead of stopping.",
    )
    t.add_argument(
        "--promote", action="store_true", default=None, help="Point 'production' at the new version even if one exists."
    )
    t.add_argument("--model-root", "--model_root", help="Registry root (default: IMGCLF_MODEL_ROOT or ./var/models).")
    t.set_defaults(handler=_train)

    pt = sub.add_parser(
        "pretrain",
        help="Self-supervised pretraining (SimSiam) of the backbone on unlabelled images, for train to start from.",
    )
    pt.add_argument(
        "--images", required=True, help="A folder (recursive), a CSV with image_uri, a gs:// prefix, or a glob."
    )
    pt.add_argument("--model", required=True, help="The model this backbone is for: names the default output.")
    pt.add_argument(
        "--output",
        help="Backbone file to write, local or gs:// (default: <IMGCLF_DATA_DIR>/backbones/NAME/backbone.npz).",
    )
    pt.add_argument("--epochs", type=int, help=f"Default {pretrain_default('epochs')}.")
    pt.add_argument("--budget", help="Wall-clock limit, e.g. 10m: no epoch starts after it (default: none).")
    pt.add_argument(
        "--views", type=int, help=f"Augmented views cached per image (default {pretrain_default('views')})."
    )
    pt.add_argument(
        "--image-size", type=int, help=f"Default {pretrain_default('image_size')}; train with the same size."
    )
    pt.add_argument("--seed", type=int, help=f"Default {pretrain_default('seed')}.")
    pt.set_defaults(handler=_pretrain)

    sub.add_parser(
        "classify",
        help="Batch-classify a CSV of images with Beam (flags: python -m beam_pipelines.batch --help).",
        add_help=False,
    )

    sub.add_parser(
        "stream",
        help="Classify Pub/Sub messages as they arrive (flags: python -m beam_pipelines.streaming --help).",
        add_help=False,
    )

    pb = sub.add_parser("publish", help="Publish images (or messages naming them) to a Pub/Sub topic at a rate.")
    pb.add_argument("--topic", required=True, help="projects/P/topics/T, or T with --project.")
    pb.add_argument("--images", required=True, help="A folder, a CSV with image_uri, or a gs:// prefix.")
    pb.add_argument("--rate", type=float, default=10.0, help="Messages per second (0: as fast as possible).")
    pb.add_argument("--count", type=int, help="Messages to send (default: one per image; cycles if more).")
    pb.add_argument("--raw", action="store_true", help="Send the image bytes with content-type, not their URI.")
    pb.add_argument("--project", help="Project of a short topic name.")
    pb.set_defaults(handler=_publish)

    tp = sub.add_parser(
        "templates", help="Build the pipeline image and Dataflow Flex Templates, and launch them (gcloud)."
    )
    launch.add_arguments(tp)

    m = sub.add_parser("models", help="List models, show a version's card, point an alias at a version, roll back.")
    m.add_argument("action", choices=["list", "show", "promote", "rollback"])
    m.add_argument("name", nargs="?")
    m.add_argument("--version", type=int)
    m.add_argument("--alias")
    m.add_argument("--model-root", "--model_root")
    m.set_defaults(handler=_models)

    lb = sub.add_parser("labels", help="The label store: import images and predictions, export corrections.")
    lb.add_argument("action", choices=["import", "export"])
    lb.add_argument(
        "paths",
        nargs="*",
        help="import: image folders or gs:// prefixes, manifests, batch or stream prediction outputs "
        "(.csv, .jsonl, globs), bq://project.dataset.table.",
    )
    lb.add_argument("--output", help="export: the corrections CSV to write (local or gs://).")
    lb.add_argument("--db", help="SQLAlchemy URL of the label store (default: IMGCLF_LABELS_DB).")
    lb.add_argument(
        "--relative-to", help="import: folder that relative image URIs in prediction outputs are relative to."
    )
    lb.add_argument("--all-or-nothing", action="store_true", help="import: any bad row imports nothing.")
    lb.add_argument("--model-root", "--model_root", help="import: registry whose label specs order the queue.")
    lb.set_defaults(handler=_labels)

    r = sub.add_parser("retrain", help="Run the retraining pipeline once: validate, train, evaluate, push if better.")
    r.add_argument("--config", help="YAML with model_name, manifest, corrections, trainer, validation, evaluation.")
    r.add_argument("--model", help="Overrides model_name in the config.")
    r.add_argument("--manifest", help="Overrides manifest in the config.")
    r.add_argument(
        "--corrections",
        help="Corrections CSV (image_uri,labels,corrected_at) or the label store URL (IMGCLF_LABELS_DB); "
        "overrides the config.",
    )
    r.add_argument("--model-root", "--model_root")
    r.add_argument("--every", help="Keep running: start a run when this long has passed since the last (e.g. 24h)...")
    r.add_argument(
        "--min-new-labels", type=int, default=0, help="...or when this many corrections arrived since (0: off)."
    )
    r.add_argument("--poll-seconds", type=float, default=60, help="How often to check (with --every).")
    r.add_argument("--once", action="store_true", help="With --every: check once, run if due, exit (for a CronJob).")
    r.add_argument("--lineage-url", help="SQLAlchemy URL of the lineage store; overrides the config.")
    r.set_defaults(handler=_retrain)

    v = sub.add_parser("serve", help="Run the prediction API (FastAPI under uvicorn); settings from IMGCLF_*.")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--workers", type=int, default=1, help="uvicorn worker processes, each with its own models.")
    v.add_argument("--models", help="Comma-separated models to load at start (default: all with the alias).")
    v.add_argument("--model-root", "--model_root")
    v.add_argument("--insecure", action="store_true", help="Serve without API keys beyond loopback.")
    v.set_defaults(handler=_serve)

    sub.add_parser("dashboard", help="The labeling dashboard (Streamlit); Streamlit's flags pass through.")
    du = sub.add_parser("dashboard-user", help="Add or change a dashboard user (bcrypt-hashed password).")
    du.add_argument("action", choices=["add"])
    du.add_argument("name")
    du.add_argument("--role", choices=["annotator", "admin"], default="annotator")
    du.add_argument("--users", help="Users file (default: IMGCLF_DASHBOARD_USERS).")
    du.add_argument("--password-stdin", action="store_true", help="Read the password from stdin.")
    du.set_defaults(handler=_dashboard_user)

    d = sub.add_parser("data", help="Write a demo dataset from a PyPI package as images plus manifests.")
    d.add_argument("dataset", choices=["elpv"])
    d.add_argument("--out", default=None, help="Folder (default: <IMGCLF_DATA_DIR>/elpv-<task>).")
    d.add_argument("--task", choices=["binary", "multiclass", "multilabel"], default="binary")
    d.add_argument("--limit", type=int, help="Only this many images (a random, fixed subset).")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(handler=_data)
    return parser


def _hint(error: ImgclfError) -> str | None:
    """The remedy, in this command's vocabulary (the core only states the fault)."""
    from models.registry import RegistryError

    if isinstance(error, RegistryError):
        return (
            "`imgclf models list` shows the models, versions and aliases there are; name one with --model, "
            "--alias or --model_version (`imgclf train` makes a new one)"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; every failure ends in one 'error:' line and its family's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    configure_logging(verbose=verbose)
    try:
        if argv and argv[0] == "classify":
            return _classify(argv[1:])
        if argv and argv[0] == "stream":
            return _stream(argv[1:])
        if argv and argv[0] == "dashboard":
            return _dashboard(argv[1:])
        if argv and argv[0] == "templates":
            args, pipeline_argv = build_parser().parse_known_args(argv)
            return launch.main(args, pipeline_argv)
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except ImgclfError as e:
        print(f"error: {describe(e, 2000)}", file=sys.stderr)
        if hint := _hint(e):
            print(f"hint: {hint}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # storage we were pointed at: unwritable, full, gone
        print(f"error: {describe(e, 2000)}", file=sys.stderr)
        return exit_code(Unavailable())
    except Exception as e:
        if verbose:
            raise
        print(f"error: unexpected {type(e).__name__}: {describe(e)} (run with -v for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
