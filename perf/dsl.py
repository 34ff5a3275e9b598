"""DSL load/compile and template render cost, next to their floors measured in the same run.

Prints one JSON object:
- ``load_compile_s``: load + validate + compile a generated scenario (1,000 steps, 100
  ``when`` conditions, templated URLs), compile caches cold, plan cache off (best of runs);
- ``yaml_safe_load_s``: ``yaml.safe_load`` of the same text (the issue's parse floor);
  ``yaml_c_load_s``: PyYAML's C safe loader (the parser the DSL itself uses);
- ``ratio_vs_yaml`` / ``ratio_vs_c_yaml``: ``load_compile_s`` over those floors;
- ``cache_hit_s``: loading the same bytes again (hash + cache lookup);
- ``render_ns``: one render of ``http://{{ lease.address }}/users/{{ user.id }}`` through
  the compiled template; ``fstring_ns``: an f-string doing the same two lookups;
  ``jinja_render_ns``: the same template through Jinja2's ``Template.render``;
- ``condition_ns``: one evaluation of a compiled ``{{ user.id > 10 and vars.token }}``.
"""

from __future__ import annotations

import json
import time
import timeit
from collections.abc import Callable
from typing import Any

import yaml

from progressd.dsl import (
    PlanCache,
    clear_compiled,
    compile_condition,
    compile_template,
    load_plan_text,
)
from progressd.dsl.sandbox import TEMPLATE_ENV

STEPS = 1000
CONDITIONS = 100
URL = "http://{{ lease.address }}/users/{{ user.id }}"


def generate(steps: int = STEPS, conditions: int = CONDITIONS) -> str:
    """A v2 document with ``steps`` steps, every ``steps // conditions``-th one guarded."""
    lines = [
        "version: 2",
        "name: perf",
        "vars: {token: abc}",
        "resources:",
        "  ip-port-pool:",
        '    backends: {members: ["127.0.0.1:18081-18090"], health-check: {interval: 1s}}',
        "load:",
        "  scenarios:",
        "    - name: big",
        "      users: 1000",
        "      resource_lease: {pool: backends, release-on: milestone:m0}",
        "      steps:",
    ]
    every = steps // conditions
    for i in range(steps):
        if i % 10 == 0:
            lines.append(f"        - milestone: m{i}")
            continue
        lines.append(f"        - name: s{i}")
        if i % every == 1:
            lines.append(f'          when: "{{{{ user.id > {i} and vars.token }}}}"')
        lines.append(f'          http: {{method: GET, url: "http://{{{{ lease.address }}}}/{i}"}}')
        lines.append("          expect: {status: 200}")
    return "\n".join(lines) + "\n"


def best(run: Callable[[], Any], repeat: int = 5) -> float:
    """Fastest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def per_call_ns(stmt: Callable[[], Any], number: int = 200_000) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e9


def cold_load(text: str) -> None:
    clear_compiled()
    load_plan_text(text, cache=None)


def main() -> None:
    text = generate()
    plan = load_plan_text(text, cache=None)
    guarded = sum(1 for step in plan.scenarios[0].steps if step.when is not None)
    load_s = best(lambda: cold_load(text))
    safe_s = best(lambda: yaml.safe_load(text))
    c_s = best(lambda: yaml.load(text, Loader=yaml.CSafeLoader))
    cache = PlanCache()
    load_plan_text(text, cache=cache)
    hit_s = best(lambda: load_plan_text(text, cache=cache), repeat=20)

    ctx: dict[str, Any] = {"lease": {"address": "127.0.0.1:18081"}, "user": {"id": 7}}
    template = compile_template(URL)
    jinja = TEMPLATE_ENV.from_string(URL)
    condition = compile_condition("{{ user.id > 10 and vars.token }}")
    cctx = {**ctx, "vars": {"token": "t"}}
    render_ns = per_call_ns(lambda: template.render(ctx))
    fstring_ns = per_call_ns(lambda: f"http://{ctx['lease']['address']}/users/{ctx['user']['id']}")
    jinja_ns = per_call_ns(lambda: jinja.render(ctx), number=20_000)
    condition_ns = per_call_ns(lambda: condition.evaluate(cctx), number=20_000)
    print(
        json.dumps(
            {
                "steps": len(plan.scenarios[0].steps),
                "conditions": guarded,
                "document_bytes": len(text.encode()),
                "load_compile_s": round(load_s, 5),
                "yaml_safe_load_s": round(safe_s, 5),
                "yaml_c_load_s": round(c_s, 5),
                "ratio_vs_yaml": round(load_s / safe_s, 3),
                "ratio_vs_c_yaml": round(load_s / c_s, 3),
                "cache_hit_s": round(hit_s, 7),
                "cache_hit_speedup": round(load_s / hit_s, 1),
                "template_kind": template.kind,
                "render_ns": round(render_ns, 1),
                "fstring_ns": round(fstring_ns, 1),
                "render_vs_fstring": round(render_ns / fstring_ns, 2),
                "jinja_render_ns": round(jinja_ns, 1),
                "render_vs_jinja": round(render_ns / jinja_ns, 3),
                "condition_ns": round(condition_ns, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
