"""Result JSON -> a readable terminal summary: fingerprint, latency table,
throughput, placement, telemetry, power, soak, and gates (red when failed)."""

from __future__ import annotations

from agent.validity import verdict_line
from controller.report.cells import num
from controller.report.placement import BOLD, GREEN, RED, RESET
from controller.report.placement import summary as placement_summary

LAT_KEYS = ("min", "mean", "p50", "p90", "p95", "p99", "p999", "max")


def status_text(result: dict) -> tuple[str, bool]:
    """(the run's status as every report shows it, ok): a completed run whose
    gate failed reads "completed — gate failed (NAME)", never a plain
    "completed" beside a FAIL."""
    status = str(result.get("status") or "unknown")
    failed = list(
        dict.fromkeys(str(g.get("name")) for g in result.get("gates") or [] if not g.get("passed", True))
    )
    if status == "completed" and failed:
        return f"completed — gate failed ({', '.join(failed)})", False
    return status, status == "completed"


def fingerprint(result: dict) -> str:
    a = result.get("agent") or {}
    rt = result.get("runtime") or {}
    rts = ", ".join(
        f"{k} {v.get('version', '')}".strip()
        for k, v in (a.get("runtimes") or {}).items()
        if isinstance(v, dict)
    )
    lines = [
        f"board     {a.get('board') or '-'} (profile {a.get('profile') or '-'}, soc {a.get('soc') or '-'})",
        f"host      {a.get('hostname') or '-'}  kernel {a.get('kernel') or '-'}  python {a.get('python') or '-'}",  # noqa: E501
    ]
    if a.get("jetpack"):
        lines.append(f"jetpack   {a['jetpack']}")
    if rts:
        lines.append(f"runtimes  {rts}")
    if rt:
        prov = rt.get("providers") or rt.get("delegate") or ""
        lines.append(f"runtime   {rt.get('name', '')} {rt.get('version', '')} {prov}".rstrip())
    acc = result.get("accelerator")
    if acc:
        lines.append(f"accel     {acc.get('name')} = profile {acc.get('profile')} entry {acc.get('entry')}")
    return "\n".join(lines)


def unsupported(result: dict) -> dict[str, int]:
    """{percentile key: queries it needs} for the percentiles the run's count
    does not support (LoadGen early stopping): shown marked, never as a number."""
    support = (result.get("validity") or {}).get("percentiles") or result.get("latency_support") or {}
    return {k: int(s.get("min_queries") or 0) for k, s in support.items() if not s.get("supported", True)}


def latency_table(lat: dict, not_supported: dict[str, int] | None = None) -> str:
    ns = not_supported or {}
    head = "  ".join(f"{k:>8}" for k in LAT_KEYS)
    vals = "  ".join(f"{'n/s':>8}" if k in ns else f"{num(lat.get(k)):>8}" for k in LAT_KEYS)
    out = f"latency ms\n{head}\n{vals}"
    if ns:
        needs = ", ".join(f"{k} needs {n:,}" for k, n in ns.items())
        out += f"\n  n/s = not supported by this many queries (early stopping): {needs}"
    return out


def validity_lines(result: dict, color: bool) -> list[str]:
    """The environment's warnings and validity notes, then the verdict: the
    LAST line of the summary, as LoadGen prints it ("Result is: VALID")."""
    out = [f"warning: {w}" for w in result.get("warnings") or []]
    v = result.get("validity")
    out += [f"note: {n}" for n in (v or {}).get("notes") or []]
    line = verdict_line(v)
    if line:
        ok = bool(v and v.get("valid"))
        out.append((GREEN if ok else BOLD + RED) + line + RESET if color else line)
    return out


def gate_lines(result: dict, color: bool) -> list[str]:
    out = []
    for g in result.get("gates") or []:
        ok = g.get("passed", True)
        word = "PASS" if ok else "FAIL"
        line = f"gate {g.get('name')}: {word}" + (f" - {g['message']}" if g.get("message") else "")
        out.append((GREEN if ok else BOLD + RED) + line + RESET if color else line)
    return out


# the validate table's columns: (label, result key, format)
VALIDATION_COLUMNS = (
    ("cosine min", "cosine", ".5f"),
    ("cos mean", "cosine_mean", ".5f"),
    ("nmse max", "nmse", ".3g"),
    ("sqnr dB", "sqnr_db", ".1f"),
    ("max|err|", "max_abs_err", ".3g"),
    ("top1", "top1_agreement", ".3f"),
    ("top5", "top5_agreement", ".3f"),
    ("mask IoU", "mask_iou", ".3f"),
    ("box rec", "box_recall", ".3f"),
    ("box prec", "box_precision", ".3f"),
)


def validation_lines(val: dict) -> str:
    """One row per output; only the columns some output has."""
    outs = val.get("outputs") or []
    cols = [c for c in VALIDATION_COLUMNS if any(o.get(c[1]) is not None for o in outs)]
    width = max([len(o.get("name") or "") for o in outs] + [6])
    verdict = {True: "passed", False: "FAILED", None: "no gates"}[
        val.get("passed") if val.get("gates") else None
    ]
    head = f"validation: {val.get('samples')} sample(s) on the device, {verdict}"
    if val.get("dequantized"):
        head += f"; dequantized: {', '.join(val['dequantized'])}"
    rows = [head, "  " + f"{'output':<{width}}" + "".join(f"  {c[0]:>10}" for c in cols)]
    for o in outs:
        rows.append(
            "  " + f"{o.get('name', ''):<{width}}" + "".join(f"  {num(o.get(k), f):>10}" for _, k, f in cols)
        )
    for name, v in (val.get("plugin") or {}).items():
        rows.append(f"  plugin {name} = {num(v, '.4g')}")
    return "\n".join(rows)


def load_line(ld: dict) -> str:
    """The load pattern's outcome: target, achieved rate, misses, queue delay."""
    pattern = ld.get("pattern") or "-"
    target = f" {num(ld.get('rate_hz'), '.1f')}/s" if ld.get("rate_hz") else ""
    burst = f" burst {ld['burst']}" if ld.get("burst") else ""
    qd = ld.get("queue_delay_ms") or {}
    return (
        f"load      {pattern}{target}{burst}: achieved {num(ld.get('achieved_rate_hz'), '.2f')}/s,"
        f" {ld.get('late', 0):,} late + {ld.get('dropped', 0):,} dropped of {ld.get('frames', 0):,} frames"
        f" (miss rate {num(100 * (ld.get('miss_rate') or 0), '.2f')}%,"
        f" deadline {num(ld.get('deadline_ms'), '.1f')} ms, {ld.get('late_policy')}),"
        f" queue delay p50 {num(qd.get('p50'), '.2f')} p99 {num(qd.get('p99'), '.2f')} ms,"
        f" idle {num(100 * (ld.get('idle_share') or 0), '.0f')}%"
    )


def render(result: dict, color: bool = False) -> str:
    m = result.get("model") or {}
    status, ok = status_text(result)
    if color and not ok:
        status = BOLD + RED + status + RESET
    lines = [
        f"run {result.get('run_id', '-')}  {result.get('kind', '-')}  {status}",
        f"model     {m.get('name', '-')} ({m.get('format', '-')}, {m.get('size_bytes', '-')} bytes, sha256 {str(m.get('sha256', ''))[:12]})",  # noqa: E501
        fingerprint(result),
    ]
    for i in result.get("inputs") or []:  # the shapes actually run
        shape = "x".join(str(d) for d in i.get("shape") or []) or "scalar"
        note = f"  ({i['note']})" if i.get("note") else ""
        lines.append(f"input     {i.get('name')} {shape} {i.get('dtype', '')}{note}")
    if result.get("error"):
        err = f"error: {result['error']}"
        lines.append(BOLD + RED + err + RESET if color else err)
    if result.get("latency_ms"):
        lines += ["", latency_table(result["latency_ms"], unsupported(result))]
        if (result.get("batch") or 1) > 1:  # --batch N: samples, and latency per sample
            b = int(result["batch"])
            lat = result["latency_ms"]
            lines.append(
                f"batch {b}: {num(result.get('samples_per_s'), '.2f')} samples/s;"
                f" per sample p50 {num((lat.get('p50') or 0) / b, '.3f')} ms,"
                f" p99 {num((lat.get('p99') or 0) / b, '.3f')} ms"
            )
        lines.append(
            f"throughput {num(result.get('throughput_ips'), '.2f')} inf/s  iterations {result.get('iterations', '-')}"  # noqa: E501
            f"  duration {num(result.get('duration_s'), '.1f')} s"
            f"  init {num(result.get('init_ms'), '.1f')} ms"
            f"  first {num(result.get('first_inference_ms'), '.2f')} ms"
        )
    ld = result.get("load")
    if ld:
        lines += ["", load_line(ld)]
    if result.get("pipeline"):
        from controller.pipeline import report as pipeline_report

        lines += ["", pipeline_report.render(result)]
    pl = result.get("placement")
    if pl:
        lines += ["", "placement", placement_summary(pl, color)]
    tel_doc = result.get("telemetry") or {}
    tel = tel_doc.get("summary") or {}
    if tel:
        lines += [
            "",
            f"telemetry {', '.join(tel_doc.get('sources') or [])} at {num(tel_doc.get('rate_hz'), '.0f')} Hz",
        ]
        if tel.get("cpu_util_mean") is not None:
            lines.append(f"  cpu util mean {tel['cpu_util_mean'] * 100:.0f}%")
        for z, v in sorted((tel.get("temps_c") or {}).items()):
            lines.append(
                f"  temp  {z:<16} {num(v.get('min'), '.1f')} .. {num(v.get('max'), '.1f')} C (mean {num(v.get('mean'), '.1f')})"  # noqa: E501
            )
        for d, v in sorted((tel.get("clocks_hz") or {}).items()):
            lines.append(
                f"  clock {d:<16} {num((v.get('min') or 0) / 1e6, '.0f')} .. {num((v.get('max') or 0) / 1e6, '.0f')} MHz"  # noqa: E501
            )
        for r, v in sorted((tel.get("rails_w") or {}).items()):
            lines.append(f"  rail  {r:<16} {v if not isinstance(v, dict) else num(v.get('mean'), '.2f')} W")
    pw = result.get("power")
    if pw:
        lines += [
            "",
            f"power     {pw.get('source', '-')}: mean {num(pw.get('mean_w'), '.3f')} W, peak {num(pw.get('peak_w'), '.3f')} W,"  # noqa: E501
            f" peak {num(pw.get('peak_a'), '.3f')} A, {num(pw.get('energy_per_inference_j'), '.4f')} J/inference,"  # noqa: E501
            f" {len(pw.get('transients') or [])} transient(s)",
        ]
        if pw.get("over_budget"):
            msg = f"  over budget {pw.get('budget_w')} W"
            lines.append(RED + msg + RESET if color else msg)
    soak = result.get("soak")
    if soak:
        lines += [
            "",
            f"soak      {soak.get('verdict', '-')}: cold {num(soak.get('cold_throughput_ips'), '.1f')} -> sustained"  # noqa: E501
            f" {num(soak.get('sustained_throughput_ips'), '.1f')} inf/s (ratio {num(soak.get('sustained_ratio'), '.2f')})",  # noqa: E501
        ]
        if soak.get("summary"):
            lines.append(f"  {soak['summary']}")
    val = result.get("validation")
    if val:
        lines += ["", validation_lines(val)]
    st = result.get("start")
    if st:
        lines += ["", start_line(st)]
    pinned = result.get("pinned_clocks")
    if pinned:
        lines += ["", pinned_line(pinned)]
    gl = gate_lines(result, color)
    if gl:
        lines += [""] + gl
    vl = validity_lines(result, color)
    if vl:
        lines += [""] + vl
    return "\n".join(lines)


def start_line(st: dict) -> str:
    """``--start cold|warm``: the cache the start used and whether it hit."""
    c = st.get("cache") or {}
    hit = {True: "hit", False: "miss", None: "n/a"}[c.get("hit")]
    where = f" {c['path']}" if c.get("path") else ""
    note = f" ({c['note']})" if c.get("note") else ""
    return (
        f"start     {st.get('mode')}: cache {c.get('kind') or 'none'} {hit}{where}{note};"
        f" init {num(st.get('init_ms'), '.1f')} ms,"
        f" first inference {num(st.get('first_inference_ms'), '.2f')} ms"
    )


def pinned_line(p: dict) -> str:
    """``--pin-clocks``: what was set for the run, and whether it was put back."""
    what = ", ".join(f"{e['name']}={e['to']}" for e in p.get("pinned") or []) or "nothing"
    state = "restored" if p.get("restored") else "NOT restored"
    errs = f"; could not set: {'; '.join(p['errors'])}" if p.get("errors") else ""
    return f"pinned    {what} ({state}){errs}"
