"""Where release 0.3.0 declared the app's services: all under one `AppServices` component.

Each service now belongs to the component of its role (web, a worker pool, the scheduler). A URN
holds its parents' types, so without an alias the engine would see new resources to create and
old ones to delete: ECS refuses a second service of the same name, and the delete that followed
would remove what the stack runs. Every child that moved out of `AppServices` says where it was;
its own children follow through the engine's inherited aliases (tests/infra/engine/test_upgrades.py).
"""

from __future__ import annotations

import pulumi

APP_SERVICES_TYPE = "djcelery:index:AppServices"
APP_SERVICES_NAME = "services"


def from_app_services() -> pulumi.ResourceOptions:
    """Options for a child that release 0.3.0 declared directly under `AppServices`."""
    return pulumi.ResourceOptions(
        aliases=[pulumi.Alias(parent=pulumi.create_urn(APP_SERVICES_NAME, APP_SERVICES_TYPE))]
    )
