"""Recorded ECS resources turned into the ECS API requests AWS will receive, checked with botocore.

botocore ships the ECS API model; validating against it catches wrong field names, types and
missing required fields that only `pulumi up` would otherwise report.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from testkit.program import RecordedResource

ECS_MODEL = botocore.session.get_session().get_service_model("ecs")


def api_errors(operation: str, params: dict[str, Any]) -> str:
    """The botocore validation report for `params` of `operation` ('' when valid)."""
    report = ParamValidator().validate(params, ECS_MODEL.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


def shape_errors(shape: str, value: Any) -> str:
    report = ParamValidator().validate(value, ECS_MODEL.shape_for(shape))
    return report.generate_report() if report.has_errors() else ""


def container_definitions(task_definition: RecordedResource) -> list[dict[str, Any]]:
    return json.loads(task_definition.inputs["containerDefinitions"])


def register_task_definition_params(task_definition: RecordedResource) -> dict[str, Any]:
    inputs = task_definition.inputs
    return {
        "family": inputs["family"],
        "taskRoleArn": inputs["taskRoleArn"],
        "executionRoleArn": inputs["executionRoleArn"],
        "networkMode": inputs["networkMode"],
        "containerDefinitions": container_definitions(task_definition),
        "volumes": [{"name": volume["name"]} for volume in inputs.get("volumes", [])],
        "requiresCompatibilities": inputs["requiresCompatibilities"],
        "cpu": inputs["cpu"],
        "memory": inputs["memory"],
        "runtimePlatform": inputs["runtimePlatform"],
    }


def create_service_params(service: RecordedResource) -> dict[str, Any]:
    inputs = service.inputs
    network = inputs["networkConfiguration"]
    params: dict[str, Any] = {
        "cluster": inputs["cluster"],
        "serviceName": inputs.get("name", service.name),
        "taskDefinition": inputs["taskDefinition"],
        "desiredCount": int(inputs["desiredCount"]),
        "capacityProviderStrategy": [
            {"capacityProvider": strategy["capacityProvider"], "weight": int(strategy["weight"])}
            for strategy in inputs["capacityProviderStrategies"]
        ],
        "platformVersion": inputs["platformVersion"],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["securityGroups"],
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED",
            }
        },
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": inputs["deploymentCircuitBreaker"],
            "maximumPercent": int(inputs["deploymentMaximumPercent"]),
            "minimumHealthyPercent": int(inputs["deploymentMinimumHealthyPercent"]),
            **deployment_strategy_params(inputs),
        },
        "enableExecuteCommand": inputs["enableExecuteCommand"],
        "enableECSManagedTags": inputs["enableEcsManagedTags"],
        "propagateTags": inputs["propagateTags"],
        "availabilityZoneRebalancing": inputs["availabilityZoneRebalancing"],
    }
    if inputs.get("loadBalancers"):
        params["loadBalancers"] = [
            {**target, "containerPort": int(target["containerPort"])} for target in inputs["loadBalancers"]
        ]
        params["healthCheckGracePeriodSeconds"] = int(inputs["healthCheckGracePeriodSeconds"])
    return params


def deployment_strategy_params(inputs: dict[str, Any]) -> dict[str, Any]:
    """The provider's `deployment_configuration` and `alarms` as the API's DeploymentConfiguration
    members: minutes are strings in the provider's schema and integers in the API, and the API keeps
    the alarms inside the deployment configuration."""
    params: dict[str, Any] = {}
    strategy = inputs.get("deploymentConfiguration") or {}
    if "strategy" in strategy:
        params["strategy"] = strategy["strategy"]
    if "bakeTimeInMinutes" in strategy:
        params["bakeTimeInMinutes"] = int(strategy["bakeTimeInMinutes"])
    if canary := strategy.get("canaryConfiguration"):
        params["canaryConfiguration"] = {
            "canaryPercent": float(canary["canaryPercent"]),
            "canaryBakeTimeInMinutes": int(canary["canaryBakeTimeInMinutes"]),
        }
    if linear := strategy.get("linearConfiguration"):
        params["linearConfiguration"] = {
            "stepPercent": float(linear["stepPercent"]),
            "stepBakeTimeInMinutes": int(linear["stepBakeTimeInMinutes"]),
        }
    if alarms := inputs.get("alarms"):
        params["alarms"] = {key: alarms[key] for key in ("alarmNames", "enable", "rollback")}
    return params
