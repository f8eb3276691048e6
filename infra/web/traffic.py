"""What ECS needs to move web traffic between two revisions: the canary, linear and blue/green
web deployments (`webDeployment` other than rolling).

The load balancer has two target groups (load_balancer.py). Each deployment starts the new
revision in the group the old one does not use, and ECS moves production traffic by rewriting the
weights of the **production listener rule** (forward to both groups) with the **infrastructure
role for load balancers**. A **test listener rule** reaches the new revision before any user does,
for requests that carry a header whose value is a stack secret (the smoke tests send it). Two
**deployment alarms** watch the whole load balancer, never one target group (the groups swap
roles every deployment): its 5xx rate and its p99 response time. Either one in ALARM during the
traffic shift or the bake rolls the deployment back; during the bake that only moves the weights
back, no task starts. A blue/green deployment also keeps the circuit breaker, which ECS documents
for rolling and blue/green deployments only (developer guide, "deployment failure detection").

ECS owns the rules' weights: the program declares them once and ignores their `actions` from
then on. The AWS provider would otherwise put its own weights back on the next `pulumi up`, in
the middle of a deployment or after one (pulumi-aws #5771; ignoring one weight does not hold,
#5798), sending production traffic to a target group without tasks.

The rules come after the admin rules (infra/web/admin.py: 100 and up, 200 and up), so the admin
stays closed for the test header too; the test rule comes before the production rule, which
matches every path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import iam
from infra.cloudwatch.alarm import AlarmSpec, Watched, metric_alarm
from infra.cloudwatch.load_balancer import load_balancer_5xx_rate, load_balancer_metric
from infra.services.fargate import TrafficShift
from infra.web.config import WebDeployment

# The header the test listener rule matches; its value is the stack secret `webTestHeaderValue`.
TEST_HEADER = "X-Web-Test"
TEST_HEADER_LENGTH = 32  # letters and digits: an ALB header condition treats * and ? as wildcards
TEST_RULE_PRIORITY = 900  # after every admin rule (admin.py), before the production rule
PRODUCTION_RULE_PRIORITY = 1000
# The AWS managed policy ECS documents for the infrastructure role for load balancers.
LOAD_BALANCER_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
# Both alarms: one-minute datapoints, two in a row (a deployment is judged within minutes).
ALARM_PERIODS = 2
MILLISECONDS = 1000


def infrastructure_trust_policy() -> iam.Policy:
    """ECS may assume the role (the trust policy of the ECS developer guide, "Amazon ECS
    infrastructure IAM role for load balancers")."""
    return iam.document(
        iam.statement(
            "AllowAccessToECSForInfrastructureManagement",
            "sts:AssumeRole",
            principal={"Service": "ecs.amazonaws.com"},
        )
    )


def forward_to_both(
    primary_arn: pulumi.Input[str], alternate_arn: pulumi.Input[str]
) -> aws.lb.ListenerRuleActionArgs:
    """All traffic to the primary group, none to the alternate one: where ECS starts from."""
    return aws.lb.ListenerRuleActionArgs(
        type="forward",
        forward=aws.lb.ListenerRuleActionForwardArgs(
            target_groups=[
                aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=primary_arn, weight=100),
                aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=alternate_arn, weight=0),
            ]
        ),
    )


def rollback_alarms(deployment: WebDeployment, load_balancer: pulumi.Input[str]) -> dict[str, AlarmSpec]:
    """The deployment alarms, by key: the 5xx rate and the p99 response time of the whole ALB."""
    suffix = pulumi.Output.from_input(load_balancer)
    p99 = suffix.apply(
        lambda name: load_balancer_metric(name, "TargetResponseTime", "p99", "p99 response time (s)")
    )
    watched: dict[str, tuple[str, pulumi.Output[Watched], float]] = {
        "5xx": (
            f"more than {deployment.rollback_5xx_percent} % of requests answered 5xx",
            suffix.apply(load_balancer_5xx_rate),
            deployment.rollback_5xx_percent,
        ),
        "p99": (
            f"p99 response time above {deployment.rollback_p99_milliseconds} ms",
            p99,
            deployment.rollback_p99_milliseconds / MILLISECONDS,
        ),
    }
    return {
        key: AlarmSpec(
            description=f"Web deployment rollback: {what} for {ALARM_PERIODS} minutes in a row.",
            watches=metric,
            comparison="GreaterThanThreshold",
            threshold=threshold,
            evaluation_periods=ALARM_PERIODS,
            datapoints_to_alarm=ALARM_PERIODS,
            treat_missing_data="notBreaching",  # no traffic is no reason to roll back
        )
        for key, (what, metric, threshold) in watched.items()
    }


def deployment_configuration(deployment: WebDeployment) -> aws.ecs.ServiceDeploymentConfigurationArgs:
    """The strategy, its traffic steps and the bake time (the provider takes minutes as strings)."""
    return aws.ecs.ServiceDeploymentConfigurationArgs(
        strategy=deployment.ecs_strategy,
        bake_time_in_minutes=str(deployment.bake_minutes),
        canary_configuration=aws.ecs.ServiceDeploymentConfigurationCanaryConfigurationArgs(
            canary_percent=deployment.canary_percent,
            canary_bake_time_in_minutes=str(deployment.canary_minutes),
        )
        if deployment.strategy == "canary"
        else None,
        linear_configuration=aws.ecs.ServiceDeploymentConfigurationLinearConfigurationArgs(
            step_percent=deployment.linear_step_percent,
            step_bake_time_in_minutes=str(deployment.linear_step_minutes),
        )
        if deployment.strategy == "linear"
        else None,
    )


@dataclass(frozen=True)
class TrafficShiftingArgs:
    deployment: WebDeployment
    listener_arn: pulumi.Input[str]  # the listener that serves the app
    load_balancer_arn_suffix: pulumi.Input[str]
    primary_target_group_arn: pulumi.Input[str]
    alternate_target_group_arn: pulumi.Input[str]


class TrafficShifting(pulumi.ComponentResource):
    """The listener rules, the role and the alarms of a traffic-shifting web deployment."""

    test_header_value: pulumi.Output[str]  # a secret
    shift: TrafficShift  # what the web service declares with them

    def __init__(
        self, name: str, args: TrafficShiftingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:TrafficShifting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-ecs-role",
            assume_role_policy=json.dumps(infrastructure_trust_policy()),
            description="ECS moves web traffic between the two target groups during a deployment",
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ecs-role", role=role.name, policy_arn=LOAD_BALANCER_POLICY_ARN, opts=child
        )
        production, test = self._rules(name, args)
        alarms = [
            metric_alarm(f"{name}-rollback-{key}", spec, [], child, ok_actions=False)
            for key, spec in rollback_alarms(args.deployment, args.load_balancer_arn_suffix).items()
        ]
        self.shift = TrafficShift(
            deployment_configuration=deployment_configuration(args.deployment),
            advanced_configuration=aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                alternate_target_group_arn=args.alternate_target_group_arn,
                production_listener_rule=production.arn,
                test_listener_rule=test.arn,
                role_arn=role.arn,
            ),
            alarm_names=[alarm.name for alarm in alarms],
            circuit_breaker=args.deployment.strategy == "blue_green",
            watched_minutes=args.deployment.watched_minutes,
        )
        self.register_outputs({"production_rule_arn": production.arn, "test_rule_arn": test.arn})

    def _rules(self, name: str, args: TrafficShiftingArgs) -> tuple[aws.lb.ListenerRule, aws.lb.ListenerRule]:
        """The production rule (every path) and the test rule (the secret header). ECS rewrites
        their forward weights; `ignore_changes` keeps the provider from putting them back."""
        owned_by_ecs = pulumi.ResourceOptions(parent=self, ignore_changes=["actions"])
        header = random.RandomPassword(
            f"{name}-test-header",
            length=TEST_HEADER_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.test_header_value = header.result
        forward = forward_to_both(args.primary_target_group_arn, args.alternate_target_group_arn)
        test = aws.lb.ListenerRule(
            f"{name}-test",
            listener_arn=args.listener_arn,
            priority=TEST_RULE_PRIORITY,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    http_header=aws.lb.ListenerRuleConditionHttpHeaderArgs(
                        http_header_name=TEST_HEADER, values=[header.result]
                    )
                )
            ],
            actions=[forward],
            opts=owned_by_ecs,
        )
        production = aws.lb.ListenerRule(
            f"{name}-production",
            listener_arn=args.listener_arn,
            priority=PRODUCTION_RULE_PRIORITY,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"])
                )
            ],
            actions=[forward],
            opts=owned_by_ecs,
        )
        return production, test
