"""`medops ...`: the command line. Parses arguments and calls library/launcher functions."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from medops.errors import ConfigurationError, MedopsError, MissingInputError
from medops.launch.errors import ClusterError
from medops.recipe import Recipe, load_recipe


def _input_pair(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f"--input {text!r}: expected NAME=DIR, e.g. prepared=out/p"
        )
    return name, Path(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medops", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_recipe(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("recipe", type=Path, help="recipe YAML")
        sub.add_argument("overrides", nargs="*", help="key.sub=value overrides")
        return sub

    with_recipe("validate", "validate a recipe and print it resolved")
    run = with_recipe("run", "run the whole pipeline locally (kfp.local)")
    run.add_argument(
        "--runner",
        choices=("subprocess", "docker"),
        default="subprocess",
        help="subprocess: steps in this venv; docker: each step in the medops image "
        "(cluster.images.cpu; `make images` builds it)",
    )
    demo = commands.add_parser("demo", help="pipeline, then serve and query the model")
    demo.add_argument("recipe", type=Path, nargs="?", default=Path("recipes/condition-demo.yaml"))
    demo.add_argument("overrides", nargs="*")
    stage = with_recipe("stage", "run one stage (container entrypoint)")
    stage.add_argument("--name", required=True, help="prepare | train | evaluate | register")
    stage.add_argument("--out", type=Path, required=True, help="output directory")
    stage.add_argument("--input", type=_input_pair, action="append", default=[])
    train = with_recipe("train", "train only (prepares first if needed); --resume continues")
    train.add_argument("--prepared", type=Path, help="default <output_dir>/prepare")
    train.add_argument("--out", type=Path, help="default <output_dir>/train")
    train.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in --out"
    )
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="build model (meta device), adapters and Ray config; load no weights, train nothing",
    )
    serve = with_recipe("serve", "serve a registered model with KServe's ModelServer")
    serve.add_argument(
        "--model-uri",
        help="default models:/<registry.model_name>@<alias>; models:/<name>/<version> serves "
        "a version the evaluation gate did not promote",
    )
    pipeline = commands.add_parser(
        "pipeline", help="Kubeflow Pipelines: compile, submit, status, logs"
    )
    pipeline_commands = pipeline.add_subparsers(dest="pipeline_command", required=True)
    compile_ = pipeline_commands.add_parser("compile", help="write the cluster pipeline's IR YAML")
    compile_.add_argument("recipe", type=Path)
    compile_.add_argument("overrides", nargs="*")
    compile_.add_argument("-o", "--output", type=Path, required=True)

    def against_kfp(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = pipeline_commands.add_parser(name, help=help_text)
        sub.add_argument("--host", required=True, help="KFP API URL, e.g. http://localhost:8888")
        sub.add_argument("--token-env", metavar="VAR", help="env variable holding a bearer token")
        return sub

    submit = against_kfp("submit", "compile the recipe's pipeline and start a run of it")
    submit.add_argument("recipe", type=Path)
    submit.add_argument("overrides", nargs="*")
    submit.add_argument("--namespace", help="KFP profile namespace (multi-user installs)")
    submit.add_argument("--experiment", help="default: the recipe's registry.experiment")
    status = against_kfp("status", "a run's state and the state of each task")
    status.add_argument("run_id")
    logs = against_kfp("logs", "the logs of a run's task pods (Kubernetes API)")
    logs.add_argument("run_id")
    logs.add_argument("--step", help="one task: prepare, train, evaluate, register, finetune")
    logs.add_argument("--namespace", default="kubeflow", help="where the run's pods are")
    data = commands.add_parser("data", help="data operations outside a pipeline run")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    deid = data_commands.add_parser(
        "deid", help="de-identify a JSONL file of {id, text} records (see docs/deid.md)"
    )
    deid.add_argument("--input", type=Path, required=True, help="JSONL, one {id, text} a line")
    deid.add_argument("--output", type=Path, required=True, help="JSONL: {id, text, spans}")
    deid.add_argument("--lang", choices=["en", "fr", "auto"], default="en")
    deid.add_argument("--policy", choices=["redact", "pseudonymize"], default="redact")
    deid.add_argument(
        "--key-env",
        metavar="VAR",
        default="MEDOPS_DEID_KEY",
        help="pseudonymize: environment variable holding the HMAC key (>= 16 bytes)",
    )
    forget = data_commands.add_parser(
        "forget",
        help="erase one patient from every prepared dataset in a store (see docs/privacy.md)",
    )
    forget.add_argument("--patient", required=True, help="the source's patient id")
    forget.add_argument("--store", type=Path, required=True, help="a recipe's output_dir")
    forget.add_argument(
        "--key-env",
        metavar="VAR",
        default="MEDOPS_DEID_KEY",
        help="environment variable holding the key prepare ran with (>= 16 bytes)",
    )
    forget.add_argument(
        "--tracking-uri",
        help="MLflow store of the registered models; default $MEDOPS_MLFLOW_TRACKING_URI, "
        "else <store>/mlflow/mlflow.db when it exists",
    )
    _governance_parsers(commands)
    drift = with_recipe(
        "drift",
        "compare recorded traffic with the training data (docs/governance.md); exit 1 on drift",
    )
    drift.add_argument(
        "--since",
        help="7d, 24h, 30m or an ISO date; default monitor.drift.window_days, else every "
        "unexpired recorded exchange",
    )
    drift.add_argument(
        "--run-summary",
        type=Path,
        help="run-summary.json of the served version's run; default <output_dir>/run-summary.json",
    )
    drift.add_argument(
        "--prepared", type=Path, help="instead of --run-summary: the prepared dataset directory"
    )
    drift.add_argument(
        "--evaluated",
        type=Path,
        help="with --prepared: the evaluate stage's directory (the answer statistics need it)",
    )
    drift.add_argument(
        "--out", type=Path, help="drift.json and drift.md; default <output_dir>/drift"
    )
    review = commands.add_parser("review", help="clinician review in Label Studio (docs/review.md)")
    review_commands = review.add_subparsers(dest="review_command", required=True)
    for name, help_text in (
        ("push", "send items with a registered version's answers for review"),
        ("pull", "write the submitted reviews as a versioned feedback dataset"),
    ):
        sub = review_commands.add_parser(name, help=help_text)
        sub.add_argument("recipe", type=Path, help="recipe YAML")
        sub.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    review_commands.choices["push"].add_argument(
        "--run-summary",
        type=Path,
        help="--from test: run-summary.json of the run whose answers are reviewed; default "
        "<output_dir>/run-summary.json",
    )
    review_commands.choices["push"].add_argument("--n", type=int, help="at most N new items")
    review_commands.choices["push"].add_argument(
        "--from",
        dest="source",
        choices=["test", "traffic"],
        default="test",
        help="test: the run's held-out items and answers; traffic: chats the server queued "
        "(serve.review_queue)",
    )
    report = review_commands.add_parser("report", help="HTML: acceptance, errors, agreement")
    report.add_argument("recipe", type=Path, help="recipe YAML")
    report.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    review_commands.choices["pull"].add_argument(
        "--out", type=Path, required=True, help="a new directory for this feedback version"
    )
    return parser


def _governance_parsers(commands: Any) -> None:
    """`approve`, `reject`, `audit`: a person's decision on a registered version, and the
    hash-chained log of every such decision (docs/governance.md)."""
    where = {
        "--tracking-uri": "MLflow store holding the version; default $MEDOPS_MLFLOW_TRACKING_URI",
        "--db": "audit log (SQLAlchemy URL); default $MEDOPS_AUDIT_DB, else audit.db beside an "
        "SQLite MLflow store",
    }
    for name, help_text in (
        ("approve", "approve a version the gate passed: record it, then move --alias to it"),
        ("reject", "reject a version: record it; aliases stay where they are"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("model_uri", help="models:/<name>/<version>")
        sub.add_argument("--reason", required=True, help="why, in your words (no patient text)")
        sub.add_argument("--actor", help="who decides; default: the OS user")
        for flag, flag_help in where.items():
            sub.add_argument(flag, help=flag_help)
    commands.choices["approve"].add_argument(
        "--alias",
        default="champion",  # registry.approval.DEFAULT_ALIAS, not imported: parsing stays light
        help="the alias that moves to the approved version",
    )
    audit = commands.add_parser("audit", help="list the audit log; --verify checks its chain")
    audit.add_argument(
        "--verify",
        action="store_true",
        help="walk the hash chain (and, given an MLflow store, the hashes its versions hold); "
        "exit 1 naming the first broken entry",
    )
    audit.add_argument("--subject", help="only entries about this, e.g. models:/<name>/<version>")
    for flag, flag_help in where.items():
        audit.add_argument(flag, help=flag_help)
    access = commands.add_parser(
        "registry-access",
        help="as the MLflow admin: create or update the pipeline, approver and operator "
        "identities (MEDOPS_MLFLOW_<ROLE>_USERNAME/PASSWORD) and their grants",
    )
    access.add_argument("--tracking-uri", required=True, help="the MLflow server (basic-auth)")
    access.add_argument(
        "--model", action="append", default=[], help="a registered model to create (repeat)"
    )


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise ConfigurationError("cannot tell who you are from the OS: pass --actor") from None


def _governance(args: argparse.Namespace) -> int:
    if not args.verbose:  # alembic logs each plugin and migration step at import and open
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from medops.registry.approval import approve, parse_version_uri, reject
    from medops.registry.audit import AuditLog, audit_url
    from medops.registry.tracking import TRACKING_ENV

    tracking = args.tracking_uri or os.environ.get(TRACKING_ENV)
    if args.command != "audit":
        parse_version_uri(args.model_uri)  # before anything is opened
        if not tracking:
            raise ConfigurationError(
                f"{args.command}: which MLflow store? pass --tracking-uri or set {TRACKING_ENV}"
            )
    log = AuditLog(args.db or audit_url(tracking), create=False)
    if args.command == "audit":
        return _audit(args, log, tracking)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    actor = args.actor or _os_user()
    if args.command == "approve":
        result = approve(client, log, args.model_uri, args.reason, actor, args.alias)
    else:
        result = reject(client, log, args.model_uri, args.reason, actor)
    if "warning" in result:
        print(f"medops {args.command}: {result['warning']}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


def _audit(args: argparse.Namespace, log: Any, tracking: str | None) -> int:
    """`medops audit`: one line per entry; --verify exits 1 naming the first broken one."""
    from medops.registry.approval import anchors

    for entry in log.entries(args.subject):
        print(entry.line())
    if not args.verify:
        return 0
    held: list[str] = []
    if tracking:
        from mlflow import MlflowClient

        held = anchors(MlflowClient(tracking_uri=tracking, registry_uri=tracking))
    result = log.verify(held)
    if not result.ok:
        print(f"medops audit: chain BROKEN: {result.problem}", file=sys.stderr)
        return 1
    checked = f", {len(held)} registry hashes found in it" if tracking else ""
    entries = f"{result.entries} entr{'y' if result.entries == 1 else 'ies'}"
    print(f"audit log intact: {entries}{checked}; head {result.head}")
    return 0


def _review(args: argparse.Namespace, recipe: Recipe) -> None:
    from medops.review.labelstudio import LabelStudio
    from medops.review.pull import pull
    from medops.review.push import (
        SUMMARY,
        RunOutputs,
        from_run,
        from_traffic,
        project_title,
        push,
    )

    if args.review_command == "report":
        from medops.review.report import write_report
        from medops.review.store import FeedbackStore, store_url

        rows = FeedbackStore(store_url(recipe)).reviews(project_title(recipe))
        print(f"report {write_report(project_title(recipe), rows, args.out)}")
        return
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    client = LabelStudio.from_env()
    if args.review_command == "push" and args.source == "traffic":
        print(json.dumps(push(recipe, from_traffic(recipe), client, args.n), indent=2))
        return
    if args.review_command == "push":
        run = RunOutputs.read(args.run_summary or recipe.out / SUMMARY)
        print(json.dumps(push(recipe, from_run(recipe, run), client, args.n), indent=2))
        return
    manifest = pull(recipe, client, args.out)
    print(json.dumps({"feedback": str(args.out), **manifest.extra["summary"]}, indent=2))


def _drift(args: argparse.Namespace, recipe: Recipe) -> int:
    """`medops drift`: the table on stdout, drift.json and drift.md in --out; 1 on drift."""
    if not args.verbose:  # alembic logs each migration step when the store opens
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from medops.monitor.report import drift_report, exit_code, table_lines, write_report
    from medops.monitor.traffic import window_start
    from medops.review.push import SUMMARY, RunOutputs

    if args.evaluated and not args.prepared:
        raise ConfigurationError("--evaluated goes with --prepared; or pass --run-summary alone")
    if args.prepared:
        prepared, evaluated = args.prepared, args.evaluated
    else:
        run = RunOutputs.read(args.run_summary or recipe.out / SUMMARY)
        prepared, evaluated = run.prepared, run.evaluated
    report = drift_report(recipe, prepared, evaluated, window_start(recipe, args.since))
    written = write_report(report, args.out or recipe.out / "drift")
    print("\n".join(table_lines(report)))
    print(f"report {written[1]}")
    return exit_code(report)


def _token(variable: str | None) -> str | None:
    """The bearer token named by ``--token-env``; never printed."""
    if variable is None:
        return None
    token = os.environ.get(variable)
    if not token:
        raise ClusterError(f"--token-env {variable}: that environment variable is not set")
    return token


def _query_run(args: argparse.Namespace) -> int:
    """`pipeline status` / `pipeline logs`: about a run, no recipe needed."""
    from medops.launch.kfp_api import run_status

    state = run_status(args.run_id, args.host, _token(args.token_env))
    if args.pipeline_command == "status":
        print(json.dumps(state, indent=2))
        return 0
    from medops.launch.pod_logs import run_logs

    for chunk in run_logs(args.run_id, args.namespace, args.step):
        print(chunk)
    return 0


def _deid(args: argparse.Namespace) -> int:
    """`data deid`: records out in input order, progress and counts on stderr."""
    from medops.deid.detect import DeidError
    from medops.deid.jsonl import DeidCounts, deid_jsonl

    if args.input.resolve() == args.output.resolve():
        raise ConfigurationError("--output must differ from --input")
    if not args.input.is_file():
        raise MissingInputError(f"--input {args.input}: no such file")
    key = None
    if args.policy == "pseudonymize":
        from medops.privacy.keys import load_key

        key = load_key(args.key_env)  # PseudonymKeyError is a MedopsError: exit 2
    last = time.monotonic()

    def progress(counts: DeidCounts) -> None:
        nonlocal last
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            rate = counts.lines_in / max(counts.seconds, 1e-9)
            print(
                f"medops data deid: {counts.lines_in} lines ({counts.errors} errors), "
                f"{rate:.1f} lines/s",
                file=sys.stderr,
            )

    partial = args.output.with_name(args.output.name + ".partial")
    try:
        with args.input.open("rb") as source, partial.open("w", encoding="utf-8") as sink:
            counts = deid_jsonl(source, sink, args.lang, args.policy, progress=progress, key=key)
    except DeidError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(args.output)
    print(json.dumps(counts.to_dict()), file=sys.stderr)
    return 0


def _forget(args: argparse.Namespace) -> int:
    """`data forget`: the JSON report on stdout, what needs a person's action on stderr."""
    from medops.privacy.erasure import forget
    from medops.privacy.keys import load_key
    from medops.registry.tracking import TRACKING_ENV

    key = load_key(args.key_env)  # PseudonymKeyError is a MedopsError: exit 2
    uri = args.tracking_uri or os.environ.get(TRACKING_ENV)
    report = forget(args.patient, args.store, key, uri)
    for line in report.warnings():
        print(f"medops data forget: {line}", file=sys.stderr)
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "pipeline_command", None) in ("status", "logs"):
        return _query_run(args)
    if args.command == "data":
        return _forget(args) if args.data_command == "forget" else _deid(args)
    if args.command in ("approve", "reject", "audit"):
        return _governance(args)
    if args.command == "registry-access":
        from medops.registry.permissions import bootstrap, identities_from_env

        bootstrap(args.tracking_uri, identities_from_env(os.environ), args.model)
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    if args.command == "validate":
        print(json.dumps({"recipe_hash": recipe.content_hash(), **recipe.to_dict()}, indent=2))
    elif args.command == "run":
        from medops.launch.local import run_local
        from medops.launch.summary import SUMMARY, run_summary, summary_lines

        summary = run_summary(recipe, run_local(recipe, args.runner))
        print("\n".join(summary_lines(summary)))
        print(f"summary {recipe.out / SUMMARY}")
    elif args.command == "demo":
        from medops.demo import run_demo

        run_demo(recipe)
    elif args.command == "stage":
        from medops.stages import run_stage

        manifest = run_stage(args.name, recipe, args.out, dict(args.input))
        print(
            json.dumps({"stage": args.name, "counts": manifest.counts, "metrics": manifest.metrics})
        )
    elif args.command == "train":
        if args.dry_run:
            from medops.launch.dry_run import dry_run

            print(json.dumps(dry_run(recipe), indent=2))
            return 0
        from medops.stages import run_training

        manifest = run_training(recipe, args.prepared, args.out, args.resume)
        print(
            json.dumps({"stage": "train", "counts": manifest.counts, "metrics": manifest.metrics})
        )
    elif args.command == "drift":
        return _drift(args, recipe)
    elif args.command == "review":
        _review(args, recipe)
    elif args.command == "serve":
        from medops.serve.server import serve

        serve(recipe, args.model_uri)
    elif args.command == "pipeline" and args.pipeline_command == "submit":
        from medops.launch.kfp_api import submit

        token = _token(args.token_env)
        print(json.dumps(submit(recipe, args.host, args.namespace, args.experiment, token)))
    elif args.command == "pipeline":
        from medops.launch.compile import compile_pipeline

        print(compile_pipeline(recipe, args.output))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # overrides may follow options (`stage R --out D k=v`): collect the stragglers
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        return _dispatch(args)
    except MedopsError as error:
        # a problem the user can fix: one line; -v adds where it was raised
        if args.verbose:
            traceback.print_exc()
        print(f"medops: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
