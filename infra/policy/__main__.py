"""The policy pack that `pulumi preview/up --policy-pack infra/policy` runs.

Constructing a PolicyPack starts the analyzer server and never returns, so this file does only
that; the rules live in the `rules` package, where tests import them.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules.pack import policies

PolicyPack(
    name="djcelery-guardrails",
    # Without --policy-pack-config every rule blocks, as in prod.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
