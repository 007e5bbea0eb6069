"""``manage.py import_nodes FILE``: create or update on-prem nodes from a CSV or YAML file, all rows or none."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from fleet.inventory.importer import FORMATS, NodeImportError, node_import

SUFFIX_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


class Command(BaseCommand):
    help = (
        "Import on-prem GPU nodes from CSV or YAML (columns: site, name, instance_type, telemetry_url, token_ref, "
        "team, project, labels, gpu_model, gpu_count). Re-importing updates nodes by site + name. "
        "A file with any bad row imports nothing. See docs/inventory.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to a .csv, .yaml or .yml file.")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, help="Override the format the file name suggests.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; write nothing.")

    def handle(self, *args, file, fmt, dry_run, **options):
        path = Path(file)
        fmt = fmt or SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CommandError(f"Cannot tell the format of {path.name}; name it .csv/.yaml or pass --format.")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        try:
            report = node_import(text=text, fmt=fmt, dry_run=dry_run)
        except NodeImportError as exc:
            raise CommandError(f"{path.name}: {len(exc.errors)} problem(s); nothing was imported.\n{exc}") from exc
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(
            f"{verb} {report.created + report.updated + report.unchanged} nodes from {path.name}: "
            f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged"
            + ("" if dry_run else f"; {report.gpus_changed} GPU rows written")
            + "."
        )
