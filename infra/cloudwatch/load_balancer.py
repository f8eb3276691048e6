"""The Application Load Balancer's own metrics (AWS/ApplicationELB by `LoadBalancer`, its ARN
suffix), which the dashboard, the alarms for people and a web release's rollback alarms all read."""

from __future__ import annotations

from infra.cloudwatch.metrics import Expression, Metric

ALB_NAMESPACE = "AWS/ApplicationELB"
# Below this many requests a minute, a 5xx rate is noise (one error in two requests is 50 %).
MIN_REQUESTS_FOR_ERROR_RATE = 10


def load_balancer_metric(load_balancer: str, name: str, statistic: str, label: str) -> Metric:
    """A metric of the whole ALB (every target group, every listener), by its ARN suffix."""
    return Metric(ALB_NAMESPACE, name, (("LoadBalancer", load_balancer),), statistic, label)


def load_balancer_5xx_rate(load_balancer: str) -> Expression:
    """5xx answers (from the app and from the ALB itself) as a percentage of all requests."""
    return Expression(
        text=(
            f"IF(requests >= {MIN_REQUESTS_FOR_ERROR_RATE}, "
            "100 * (FILL(app5xx, 0) + FILL(alb5xx, 0)) / requests, 0)"
        ),
        label="5xx % of requests",
        inputs={
            "requests": load_balancer_metric(load_balancer, "RequestCount", "Sum", "requests"),
            "app5xx": load_balancer_metric(
                load_balancer, "HTTPCode_Target_5XX_Count", "Sum", "5xx from the app"
            ),
            "alb5xx": load_balancer_metric(
                load_balancer, "HTTPCode_ELB_5XX_Count", "Sum", "5xx from the ALB"
            ),
        },
    )
