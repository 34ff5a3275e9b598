"""The scenario DSL: YAML documents -> validated, compiled, immutable plans (the WBS).

Entry points: ``load_plan(path)`` and ``load_plan_text(text, file=...)`` return a ``Plan``
(cached by content hash) or raise ``progressd.errors.DslError`` with ``file:line:col``.
Conditions and templates compile once (``compile_condition``, ``compile_template``) and
evaluate against a ``Context`` (see ``context.py``).
"""

from __future__ import annotations

from progressd.dsl.cache import (
    DEFAULT_CACHE,
    CacheStatistics,
    PlanCache,
    clear_compiled,
    content_hash,
)
from progressd.dsl.check import check_files, summarize
from progressd.dsl.conditions import CompiledCondition, compile_condition
from progressd.dsl.context import ROOT_FIELDS, ROOTS, Context, RenderError
from progressd.dsl.loader import load_plan, load_plan_text
from progressd.dsl.sandbox import ExpressionError
from progressd.dsl.templates import CompiledTemplate, compile_template, render_json
from progressd.dsl.wbs import (
    BatchingPlan,
    Condition,
    ExecSpec,
    ExternalSpec,
    HealthCheckPlan,
    HttpSpec,
    LeasePlan,
    MilestoneSpec,
    Plan,
    PollerPlan,
    PoolPlan,
    ProgressPlan,
    SamplingPlan,
    ScenarioPlan,
    StepKind,
    StepPlan,
    StepSpec,
    Template,
    ThinkSpec,
    ThresholdPlan,
)

__all__ = [
    "DEFAULT_CACHE",
    "ROOTS",
    "ROOT_FIELDS",
    "BatchingPlan",
    "CacheStatistics",
    "CompiledCondition",
    "CompiledTemplate",
    "Condition",
    "Context",
    "ExecSpec",
    "ExpressionError",
    "ExternalSpec",
    "HealthCheckPlan",
    "HttpSpec",
    "LeasePlan",
    "MilestoneSpec",
    "Plan",
    "PlanCache",
    "PollerPlan",
    "PoolPlan",
    "ProgressPlan",
    "RenderError",
    "SamplingPlan",
    "ScenarioPlan",
    "StepKind",
    "StepPlan",
    "StepSpec",
    "Template",
    "ThinkSpec",
    "ThresholdPlan",
    "check_files",
    "clear_compiled",
    "compile_condition",
    "compile_template",
    "content_hash",
    "load_plan",
    "load_plan_text",
    "render_json",
    "summarize",
]
