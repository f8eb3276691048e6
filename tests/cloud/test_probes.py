"""The cloud smoke test's edit of an exported state, checked here on the shape `pulumi stack export
--show-secrets` prints (secrets as {"4dabf…": "1b47…", "plaintext": <JSON text>}, Pulumi's
apitype.SecretV1): the smoke test itself runs only against AWS."""

from __future__ import annotations

import json

from tests.cloud import probes

SECRET_MARK = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
STORED = "eyJwYXlsb2FkIjoiZnJlc2gifQ=="
SERVER = "123456789012.dkr.ecr.us-east-1.amazonaws.com/djcelery-smoke"


def secret(value: object) -> dict[str, str]:
    return {**SECRET_MARK, "plaintext": json.dumps(value)}


def exported_image() -> dict[str, object]:
    """A docker.Image as pulumi-docker stores it: the registry among the inputs, with its password a
    secret, and the inputs again inside the outputs (`__inputs`), there as one secret object."""
    registry = {"server": SERVER, "username": "AWS", "password": secret(STORED)}
    return {
        "type": "docker:index/image:Image",
        "inputs": {"imageName": f"{SERVER}:abc", "registry": registry},
        "outputs": {"repoDigest": f"{SERVER}@sha256:00", "__inputs": secret({"registry": {**registry,
                    "password": STORED}})},
    }  # fmt: skip


def test_every_stored_copy_of_the_password_is_replaced_and_the_rest_is_kept() -> None:
    deployment = {"resources": [{"type": "pulumi:pulumi:Stack"}, exported_image()]}

    edited, replaced = probes.replace_secret_string(deployment, STORED, "expired")

    assert replaced == 2
    assert STORED not in json.dumps(edited)
    image = edited["resources"][1]
    registry = probes.plain(image["inputs"]["registry"])
    assert probes.plain(registry["password"]) == "expired"
    assert set(registry["password"]) == {*SECRET_MARK, "plaintext"}, "still a secret"
    assert probes.plain(image["outputs"]["__inputs"])["registry"]["password"] == "expired"
    assert image["outputs"]["repoDigest"] == f"{SERVER}@sha256:00"


def test_a_state_without_the_password_is_left_as_it_is() -> None:
    deployment = {"resources": [exported_image()]}

    edited, replaced = probes.replace_secret_string(deployment, "another password", "expired")

    assert (edited, replaced) == (deployment, 0)


def test_the_erroring_revision_reads_its_database_url_from_nowhere_and_keeps_the_rest() -> None:
    revision = {
        "family": "djcelery-smoke-web",
        "containerDefinitions": [
            {
                "name": "web",
                "secrets": [
                    {"name": "DATABASE_URL", "valueFrom": "arn:db"},
                    {"name": "REDIS_URL", "valueFrom": "arn:r"},
                ],
                "environment": [{"name": "LOG_LEVEL", "value": "INFO"}],
            }
        ],
    }
    [web] = probes.with_unreachable_database(revision, "web")["containerDefinitions"]
    assert web["secrets"] == [{"name": "REDIS_URL", "valueFrom": "arn:r"}]
    assert {"name": "DATABASE_URL", "value": probes.UNREACHABLE_DATABASE_URL} in web["environment"]
    assert revision["containerDefinitions"][0]["secrets"][0]["name"] == "DATABASE_URL", "a copy is edited"
