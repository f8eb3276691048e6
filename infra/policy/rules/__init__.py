"""Security and reliability guardrails for every stack of this project, as pulumi-policy rules.

One module per AWS area holds that area's rules (`rds`, `elasticache`, `ecs`, `ecr`, `elb`,
`network`, `iam`, `cloudwatch`, `kms`, `s3`), `tiers` the rules that act on one stack tier only,
`shared` what they are all made of, and `pack` puts them together with the config of each tier.
Each rule names the AWS Security Hub control it implements, where one exists.

The modules import each other relatively: the pack's `__main__.py` imports this package as
`rules` from its own virtualenv, tests import it as `infra.policy.rules`. Nothing here constructs
a `PolicyPack` (that starts a server and blocks).
"""
