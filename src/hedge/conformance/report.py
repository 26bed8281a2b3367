"""The compatibility matrix in four formats: a terminal table, JSON, JUnit XML and Markdown.

Deployments are rows and cases columns; a cell is pass, fail or skip, and the
reasons for fails and skips are listed under the matrix, numbered.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import Any

from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from hedge.conformance.runner import CaseResult, Report

FORMATS = ("table", "json", "junit", "markdown")


def _usd(value: float) -> str:
    return f"${value:.6f}"


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"


def _notes(report: Report) -> list[CaseResult]:
    return [r for r in report.results if r.status != "pass"]


def _headline(report: Report) -> str:
    s = report.summary()
    head = (
        f"{s['deployments']} deployment{'s' if s['deployments'] != 1 else ''} x {s['cases']} cases: "
        f"{s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped"
    )
    if s["required_failed"]:
        head += f" ({s['required_failed']} required case{'s' if s['required_failed'] != 1 else ''} failed)"
    return head


# -- table ----------------------------------------------------------------------------------------


def _header(case_id: str) -> str:
    """A case id broken after each '-', so narrow columns keep whole words."""
    return case_id.replace("-", "-\n")


def _natural_width(renderable: Table) -> int:
    """Characters ``renderable`` takes when nothing squeezes it."""
    console = Console(width=100_000, file=io.StringIO(), color_system=None)
    return Measurement.get(console, console.options, renderable).maximum


def _wide(report: Report, number: dict[tuple[str, str], int]) -> Table:
    """Deployments as rows, cases as columns, then latency and cost."""
    by_dep = report.summary()["by_deployment"]
    grid = Table(title="hedge check", title_justify="left", header_style="bold")
    grid.add_column("deployment", no_wrap=True)
    for case in report.cases:
        grid.add_column(_header(case.id), justify="center", no_wrap=True)
    grid.add_column("latency", justify="right", no_wrap=True)
    grid.add_column("cost", justify="right", no_wrap=True)
    for dep in report.deployments:
        cells: list[Text | str] = [dep]
        cells += [_cell(report.result(dep, c.id), number.get((dep, c.id))) for c in report.cases]
        cells += [_ms(by_dep[dep]["latency_ms"]), _usd(by_dep[dep]["cost_usd"])]
        grid.add_row(*cells)
    return grid


def _tall(report: Report, number: dict[tuple[str, str], int], deployments: list[str], title: str) -> Table:
    """Cases as rows, ``deployments`` as columns (headed provider/ over model), latency and cost last."""
    by_dep = report.summary()["by_deployment"]
    grid = Table(title=title, title_justify="left", header_style="bold")
    grid.add_column("case", no_wrap=True)
    for dep in deployments:
        # Folded, never cut, if one deployment alone is wider than the terminal.
        grid.add_column(dep.replace("/", "/\n", 1), justify="center", overflow="fold")
    for case in report.cases:
        row: list[Text | str] = [case.id]
        row += [_cell(report.result(dep, case.id), number.get((dep, case.id))) for dep in deployments]
        grid.add_row(*row)
    grid.add_section()
    grid.add_row("latency", *(_ms(by_dep[dep]["latency_ms"]) for dep in deployments))
    grid.add_row("cost", *(_usd(by_dep[dep]["cost_usd"]) for dep in deployments))
    return grid


def _tall_grids(report: Report, number: dict[tuple[str, str], int], width: int) -> list[Table]:
    """As many deployments side by side as fit ``width``, in as many matrices as that takes."""
    chunks: list[list[str]] = []
    for dep in report.deployments:
        if chunks and _natural_width(_tall(report, number, [*chunks[-1], dep], "")) <= width:
            chunks[-1].append(dep)
        else:
            chunks.append([dep])
    if len(chunks) == 1:
        return [_tall(report, number, chunks[0], "hedge check")]
    total = len(report.deployments)
    grids, first = [], 1
    for chunk in chunks:
        last = first + len(chunk) - 1
        span = f"deployment {first}" if first == last else f"deployments {first}-{last}"
        grids.append(_tall(report, number, chunk, f"hedge check ({span} of {total})"))
        first = last + 1
    return grids


def table(report: Report, width: int | None = None) -> Group:
    """The matrix: deployments as rows and cases as columns; if that is wider than ``width``,
    cases as rows and deployments as columns (in several matrices if they do not fit side by side),
    so it still reads in a narrow terminal, with no deployment name or number cut."""
    notes = _notes(report)
    number = {(r.deployment, r.case): i + 1 for i, r in enumerate(notes)}
    wide = _wide(report, number)
    grids = [wide] if width is None or _natural_width(wide) <= width else _tall_grids(report, number, width)
    lines: list[Any] = list(grids)
    for i, r in enumerate(notes, 1):
        style = "dim" if r.status == "skip" else ("red" if r.required else "yellow")
        label = r.status if r.status == "skip" or r.required else "fail (not required)"
        lines.append(Text(f"[{i}] {r.deployment} · {r.case} · {label}: {r.reason}", style=style))
    s = report.summary()
    lines.append(
        Text(
            f"{_headline(report)} in {_ms(s['duration_ms'])}, {_usd(s['cost_usd'])}",
            style="bold red" if s["required_failed"] else "bold green",
        )
    )
    return Group(*lines)


def _cell(result: CaseResult | None, note: int | None) -> Text:
    if result is None:
        return Text("")
    if result.status == "pass":
        return Text("✓", style="green")
    mark = "✗" if result.status == "fail" else "○"
    style = "dim" if result.status == "skip" else ("bold red" if result.required else "yellow")
    return Text(f"{mark}{note}" if note else mark, style=style)


def render_table(report: Report, width: int | None = None) -> str:
    """The table as plain text (for ``--output``): as wide as the matrix needs, unless ``width``."""
    notes = _notes(report)
    wide = _natural_width(_wide(report, {(r.deployment, r.case): i + 1 for i, r in enumerate(notes)})) + 2
    console = Console(width=width or wide, color_system=None, force_terminal=False, file=io.StringIO())
    console.print(table(report, width))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


# -- json -----------------------------------------------------------------------------------------


def render_json(report: Report, indent: int | None = 2) -> str:
    doc = {"results": [r.public() for r in report.results], "summary": report.summary()}
    return json.dumps(doc, indent=indent, ensure_ascii=False)


# -- junit ----------------------------------------------------------------------------------------


def render_junit(report: Report) -> str:
    s = report.summary()
    root = ET.Element(
        "testsuites",
        name="hedge check",
        tests=str(len(report.results)),
        failures=str(s["failed"]),
        skipped=str(s["skipped"]),
        errors="0",
        time=f"{s['duration_ms'] / 1000:.3f}",
    )
    for dep in report.deployments:
        rows = [r for r in report.results if r.deployment == dep]
        d = s["by_deployment"][dep]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=dep,
            tests=str(len(rows)),
            failures=str(d["failed"]),
            skipped=str(d["skipped"]),
            errors="0",
            time=f"{d['latency_ms'] / 1000:.3f}",
            timestamp=report.checked_at.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="cost_usd", value=f"{d['cost_usd']:.10f}")
        ET.SubElement(props, "property", name="hedge_version", value=report.hedge_version)
        titles = {c.id: c.title for c in report.cases}
        for r in rows:
            case = ET.SubElement(
                suite, "testcase", classname=dep, name=r.case, time=f"{r.latency_ms / 1000:.3f}"
            )
            if titles.get(r.case):
                ET.SubElement(
                    ET.SubElement(case, "properties"), "property", name="title", value=titles[r.case]
                )
            if r.status == "fail":
                failure = ET.SubElement(
                    case, "failure", message=r.reason, type="required" if r.required else "optional"
                )
                failure.text = r.reason
            elif r.status == "skip":
                ET.SubElement(case, "skipped", message=r.reason)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- markdown -------------------------------------------------------------------------------------

_MD = {"pass": "✅", "fail": "❌", "skip": "⏭️"}


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def render_markdown(report: Report) -> str:
    notes = _notes(report)
    number = {(r.deployment, r.case): i + 1 for i, r in enumerate(notes)}
    s = report.summary()
    verdict = "❌" if s["required_failed"] else "✅"
    out = [f"### {verdict} hedge check: {_headline(report)}", ""]
    out.append("| deployment | " + " | ".join(f"`{c.id}`" for c in report.cases) + " | latency | cost |")
    out.append("| --- | " + " | ".join(":-:" for _ in report.cases) + " | --: | --: |")
    for dep in report.deployments:
        cells = []
        for case in report.cases:
            r = report.result(dep, case.id)
            if r is None:
                cells.append(" ")
                continue
            mark = _MD[r.status] if r.status != "fail" or r.required else "⚠️"
            n = number.get((dep, case.id))
            cells.append(f"{mark} [{n}]" if n else mark)
        d = s["by_deployment"][dep]
        out.append(
            f"| `{_md(dep)}` | " + " | ".join(cells) + f" | {_ms(d['latency_ms'])} | {_usd(d['cost_usd'])} |"
        )
    if notes:
        out += ["", "**Failures and skips**", ""]
        for i, r in enumerate(notes, 1):
            label = {"fail": "fail" if r.required else "fail (not required)", "skip": "skip"}[r.status]
            out.append(f"{i}. `{_md(r.deployment)}` · `{r.case}` · {label}: {_md(r.reason)}")
    out += [
        "",
        f"<sub>hedge {report.hedge_version} · {report.checked_at.strftime('%Y-%m-%d %H:%M:%S UTC')} · "
        f"{_ms(s['duration_ms'])} · {_usd(s['cost_usd'])} · ✅ pass ❌ fail ⚠️ optional case failed "
        "⏭️ skipped</sub>",
    ]
    return "\n".join(out) + "\n"


def render(report: Report, fmt: str, compact: bool = False) -> str:
    if fmt == "json":
        return render_json(report, None if compact else 2) + "\n"
    if fmt == "junit":
        return render_junit(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_table(report)
