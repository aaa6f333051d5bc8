"""Gates as JUnit testcases, so CI shows a failed fallback/validation/soak gate."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def render(result: dict) -> str:
    gates = result.get("gates") or []
    name = f"edgebench.{result.get('kind', 'run')}.{(result.get('model') or {}).get('name', 'model')}"
    suite = ET.Element("testsuite", name=name, tests=str(len(gates) + 1))
    # JUnit's schema puts <properties> before the testcases; absent values are left out
    props = ET.SubElement(suite, "properties")
    for k in ("run_id", "status", "throughput_ips"):
        if result.get(k) is not None:
            ET.SubElement(props, "property", name=k, value=str(result[k]))
    failures = 0
    run = ET.SubElement(suite, "testcase", classname=name, name="run")
    if result.get("status") != "completed":
        failures += 1
        ET.SubElement(run, "failure", message=str(result.get("error") or result.get("status")))
    for g in gates:
        tc = ET.SubElement(suite, "testcase", classname=name, name=str(g.get("name")))
        if not g.get("passed", True):
            failures += 1
            ET.SubElement(tc, "failure", message=str(g.get("message") or "gate failed"))
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
