"""Stack config: every stack file is valid, and every bad value is refused up front with a clear message."""

import pytest
import yaml

from infra.config.reader import ConfigReader, StackConfigError
from infra.stack import PROJECT_FILE, SECRET_KEYS, StackConfig, declared_config_keys, validate
from queuemetrics import schema
from testkit.program import ProgramFailed, bare_config, run_program

PROJECT = "djcelery"


def raw_config(stack: str = "pr-123", **overrides: object) -> dict[str, str]:
    return bare_config(stack, overrides)


def problems_for(**overrides: object) -> dict[str, str]:
    with pytest.raises(StackConfigError) as failure:
        validate(raw_config(**overrides))
    return {problem.key: str(problem) for problem in failure.value.problems}


def default_pool(**changes: object) -> dict[str, object]:
    pool = yaml.safe_load(PROJECT_FILE.read_text())["config"]["workerPools"]["default"][0]
    return {**pool, **changes}


def test_every_declared_key_has_a_type_description_and_default() -> None:
    project = yaml.safe_load(PROJECT_FILE.read_text())
    assert project["name"] == PROJECT
    assert "main" not in project, "the program runs from the project root (see __main__.py)"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    for key in declared_config_keys():
        spec = project["config"][key]
        assert spec.get("description"), f"Pulumi.yaml config {key} has no description"
        assert "default" in spec, f"Pulumi.yaml config {key} has no default, so a new stack cannot deploy"
        # Pulumi.yaml types cannot describe a list of objects, so workerPools alone is untyped.
        if spec.get("type") == "array":
            assert spec.get("items") == {"type": "string"}, f"{key}: only lists of strings are read"
        elif key != "workerPools":
            assert spec.get("type") in {"string", "integer", "boolean"}, f"{key} has no supported type"


def test_every_key_is_documented_for_users() -> None:
    reference = (PROJECT_FILE.parent / "README.md").read_text()
    undocumented = [key for key in declared_config_keys() if f"| `{key}` |" not in reference]
    assert undocumented == [], f"README.md has no configuration reference row for {undocumented}"


@pytest.mark.parametrize("stack", ["pr-123", "dev", "prod"])
def test_each_stack_file_is_a_valid_config(stack: str) -> None:
    assert isinstance(validate(raw_config(stack)), StackConfig)


def test_prod_as_cloned_refuses_to_deploy_and_names_the_keys_to_set() -> None:
    """Pulumi.prod.yaml requires HTTPS and leaves the domain to its owner: before they set it, the
    program stops before declaring anything, with the commands to run."""
    with pytest.raises(ProgramFailed) as failure:
        run_program("prod", owner_config=False)
    error = failure.value.error
    assert isinstance(error, StackConfigError), failure.value
    assert error.keys == ["domainName/hostedZoneId"]
    assert "requireHttps is true" in str(error) and "certificateArn" in str(error)
    assert failure.value.resources == []


def test_a_stack_that_still_sets_the_web_count_learns_what_replaced_it() -> None:
    problems = problems_for(webDesiredCount=2)
    assert list(problems) == ["webDesiredCount"], "reported once, not also as an unknown key"


def test_a_pool_whose_numbers_cannot_scale_is_refused_with_every_reason() -> None:
    problems = problems_for(
        workerPools=[default_pool(minCount=-1, maxCount=0, taskSeconds=0)], scaleInQuietMinutes=0
    )
    for key in ("workerPools[0].minCount", "workerPools[0].maxCount", "workerPools[0].taskSeconds"):
        assert key in problems, f"{key} missing from {list(problems)}"
    assert "scaleInQuietMinutes" in problems


def test_a_latency_target_below_one_message_per_worker_is_refused() -> None:
    problems = problems_for(workerPools=[default_pool(targetLatencySeconds=1, taskSeconds=10, concurrency=1)])
    assert list(problems) == ["workerPools[0]"]
    assert "too short for tasks of 10 s at concurrency 1" in problems["workerPools[0]"]


def test_admin_networks_are_normalized() -> None:
    config = validate(raw_config(adminAllowedCidrs=["2001:DB8::/32", "203.0.113.0/24"]))
    assert config.web.admin_allowed_cidrs == ("2001:db8::/32", "203.0.113.0/24")
    assert not config.web.admin_open_to_everyone
    assert validate(raw_config()).web.admin_open_to_everyone
    assert validate(raw_config("prod")).web.admin_allowed_cidrs == ()


def test_program_reads_every_declared_key() -> None:
    """A key declared in Pulumi.yaml that the program ignores would silently do nothing."""
    read = ConfigReader(raw_config(), SECRET_KEYS)
    StackConfig.read(read, None)
    assert read.problems == []
    assert read.read_keys == set(declared_config_keys()), (
        f"declared but never read: {set(declared_config_keys()) - read.read_keys}; "
        f"read but not declared: {read.read_keys - set(declared_config_keys())}"
    )
    assert validate(raw_config()).broker.parameter_group_family == "redis7"


def test_stack_specific_values_override_defaults() -> None:
    dev, prod = validate(raw_config("dev")), validate(raw_config("prod"))
    assert (dev.network.nat_mode, prod.network.nat_mode) == ("none", "per_az")
    assert dev.workers.pools[0].spot and dev.workers.pools[0].scaling.min_count == 0
    assert all(not pool.spot and pool.scaling.min_count >= 1 for pool in prod.workers.pools)
    assert prod.database.multi_az and prod.database.deletion_protection and prod.broker.replicas == 1
    assert prod.database.backup_retention_days >= 7


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (
            {"workerPools": [default_pool(minCount=3, maxCount=2)]},
            "workerPools[0].minCount",
            "got 3; allowed: at most maxCount (2)",
        ),
        (
            {"webCpu": 256, "webMemory": 4096},
            "webCpu/webMemory",
            "got [256, 4096]; allowed: a Fargate task size",
        ),
        (
            {"workerPools": [default_pool(cpu=512, memory=512)]},
            "workerPools[0].cpu/memory",
            "got [512, 512]; allowed: a Fargate task size",
        ),
        ({"redisEngine": "memcached"}, "redisEngine", 'got "memcached"; allowed: redis, valkey'),
        (
            {"imagePullAccounts": ["12345"]},
            "imagePullAccounts",
            "allowed: a list of at most 20 12-digit AWS account ids",
        ),
        (
            {"dbEngineVersion": "postgres-16"},
            "dbEngineVersion",
            'got "postgres-16"; allowed: MAJOR or MAJOR.MINOR',
        ),
        (
            {"dbEngineVersion": "9.6"},
            "dbEngineVersion",
            'got "9.6"; allowed: major version 13, 14, 15, 16, 17',
        ),
        ({"redisEngineVersion": "7"}, "redisEngineVersion", 'got "7"; allowed: MAJOR.MINOR'),
        (
            {"redisEngine": "valkey", "redisEngineVersion": "6.2"},
            "redisEngineVersion",
            "allowed: for valkey, major version 7 or 8",
        ),
        ({"logRetentionDays": -1}, "logRetentionDays", 'got "-1"; allowed: 1, 3, 5, 7, 14'),
        (
            {"dbBackupRetentionDays": -7},
            "dbBackupRetentionDays",
            'got "-7"; allowed: an integer from 1 to 35',
        ),
        ({"natMode": "dual"}, "natMode", 'got "dual"; allowed: none, single, per_az'),
        (
            {"workerPools": [default_pool(taskSeconds=0)]},
            "workerPools[0].taskSeconds",
            "got 0; allowed: a positive number of seconds",
        ),
        (
            {"workerPools": [default_pool(concurrency=1, targetLatencySeconds=1, taskSeconds=30)]},
            "workerPools[0]",
            "could not hold even one message",
        ),
        (
            {"workerPools": [default_pool(prefetchMultiplier=0)]},
            "workerPools[0].prefetchMultiplier",
            "got 0; allowed: an integer from 1 to 16",
        ),
        (
            {"workerPools": [default_pool(maxMemoryPerChildMiB=16)]},
            "workerPools[0].maxMemoryPerChildMiB",
            "allowed: 0 (no limit), or 64 to the pool's memory (512)",
        ),
        (
            {"workerPools": [default_pool(maxMemoryPerChildMiB=1024)]},
            "workerPools[0].maxMemoryPerChildMiB",
            "allowed: 0 (no limit), or 64 to the pool's memory (512)",
        ),
        (
            {"workerPools": [default_pool(prefetchMultiplier=64)]},
            "workerPools[0].prefetchMultiplier",
            "got 64; allowed: an integer from 1 to 16",
        ),
        (
            {"workerPools": [default_pool(prefetch=4)]},
            "workerPools[0]",
            "taskSeconds, and optionally prefetchMultiplier, maxMemoryPerChildMiB",
        ),
        (
            {"redisClusterMode": True},
            "redisClusterMode",
            'got "true"; allowed: false (Celery\'s Redis transport',
        ),
        (
            {"redisServerless": True},
            "redisServerless",
            "allowed: false (ElastiCache Serverless is a Redis Cluster",
        ),
        (
            {"ephemeral": True, "dbDeletionProtection": True},
            "dbDeletionProtection",
            "allowed: false in an ephemeral stack",
        ),
        (
            {"ephemeral": True, "albDeletionProtection": True},
            "albDeletionProtection",
            "allowed: false in an ephemeral stack",
        ),
        ({"workerStopTimeoutSeconds": 300}, "workerStopTimeoutSeconds", "allowed: an integer from 2 to 120"),
        (
            {"taskSoftTimeLimitSeconds": 300},
            "taskSoftTimeLimitSeconds",
            "less than taskTimeLimitSeconds (300)",
        ),
        (
            {"visibilityTimeoutSeconds": 200},
            "visibilityTimeoutSeconds",
            "more than taskTimeLimitSeconds (300)",
        ),
        ({"albIdleTimeoutSeconds": 30}, "albIdleTimeoutSeconds", "more than gunicornTimeoutSeconds (30)"),
        ({"webCpu": "lots"}, "webCpu", 'got "lots"; allowed: an integer from 256 to 16384'),
        ({"beatEnabled": "yes"}, "beatEnabled", 'got "yes"; allowed: true or false'),
        ({"workerPools": []}, "workerPools", "allowed: a non-empty list"),
        (
            {"workerPools": [default_pool(), default_pool()]},
            "workerPools",
            "unique pool names (repeated: default)",
        ),
        ({"workerPools": [default_pool(queues=[])]}, "workerPools[0].queues", "a non-empty list of distinct"),
        ({"workerPools": [{"name": "x"}]}, "workerPools[0]", "an object with exactly the fields"),
        (
            {"dbMonitoringIntervalSeconds": 45},
            "dbMonitoringIntervalSeconds",
            "allowed: 0, 1, 5, 10, 15, 30, 60",
        ),
        (
            {"dbRestoredIdentifier": "djcelery-dev-postgres-copy"},
            "dbRestoredIdentifier",
            "the identifier `python -m infra.ops restore` printed (<database>-rYYYYMMDDHHMM)",
        ),
        ({"mediaNoncurrentVersionDays": 0}, "mediaNoncurrentVersionDays", "an integer from 1 to 3650"),
        ({"customerManagedKey": "on"}, "customerManagedKey", 'got "on"; allowed: true or false'),
        ({"certificateArn": "my-cert"}, "certificateArn", "empty, or an ACM certificate ARN"),
        (
            {"domainName": "app.example.com"},
            "domainName",
            "empty unless hostedZoneId or certificateArn is set",
        ),
        ({"hostedZoneId": "Z0123456789ABC"}, "hostedZoneId", "empty unless domainName is set"),
        (
            {"domainName": "app.example.com", "hostedZoneId": "example.com"},
            "hostedZoneId",
            "a Route 53 hosted zone id like Z0123456789ABC",
        ),
        (
            {"requireHttps": True},
            "domainName/hostedZoneId",
            "`pulumi config set domainName app.yourcompany.com` and `pulumi config set hostedZoneId",
        ),
        ({"webMinCount": 3, "webMaxCount": 2}, "webMinCount", "got 3; allowed: at most webMaxCount (2)"),
        ({"webMinCount": 0}, "webMinCount", "allowed: an integer from 1 to 1000"),
        (
            {"webDesiredCount": 2},
            "webDesiredCount",
            "no longer a key: web autoscaling owns the task count; set webMinCount and webMaxCount",
        ),
        ({"webRequestsPerTask": 0}, "webRequestsPerTask", "allowed: an integer from 10 to 100000"),
        ({"webCpuTargetPercent": 95}, "webCpuTargetPercent", "allowed: an integer from 10 to 90"),
        ({"wafRateLimit": 5}, "wafRateLimit", "allowed: an integer from 10 to 2000000000"),
        # Ranges of the botocore ECS model (DeploymentConfiguration, CanaryConfiguration,
        # LinearConfiguration): percentages are multiples of 0.1, bake times 0-1440 minutes.
        ({"webDeployment": "canaries"}, "webDeployment", "allowed: rolling, canary, linear, blue_green"),
        ({"webCanaryPercent": "0.05"}, "webCanaryPercent", "a number from 0.1 to 100 in steps of 0.1"),
        ({"webCanaryPercent": "12.25"}, "webCanaryPercent", "a number from 0.1 to 100 in steps of 0.1"),
        ({"webCanaryPercent": "101"}, "webCanaryPercent", "a number from 0.1 to 100 in steps of 0.1"),
        ({"webLinearStepPercent": "2.9"}, "webLinearStepPercent", "a number from 3 to 100 in steps of 0.1"),
        ({"webCanaryMinutes": 1441}, "webCanaryMinutes", "an integer from 0 to 1440"),
        ({"webLinearStepMinutes": -1}, "webLinearStepMinutes", "an integer from 0 to 1440"),
        ({"webBakeMinutes": 1441}, "webBakeMinutes", "an integer from 0 to 1440"),
        ({"webRollback5xxPercent": 0}, "webRollback5xxPercent", "an integer from 1 to 100"),
        ({"webRollbackP99Milliseconds": 5}, "webRollbackP99Milliseconds", "an integer from 10 to 600000"),
        (
            {"webDeployment": "canary", "adminAllowedCidrs": ["203.0.113.0/24"]},
            "adminAllowedCidrs",
            "empty or everyone (0.0.0.0/0, ::/0) while webDeployment is canary",
        ),
        ({"workerCanaryMinutes": 61}, "workerCanaryMinutes", "an integer from 0 to 60"),
        ({"workerCanaryMaxFailurePercent": 0}, "workerCanaryMaxFailurePercent", "an integer from 1 to 100"),
        ({"workerPools": [default_pool(canaryMinutes=90)]}, "workerPools[0].canaryMinutes", "from 0 to 60"),
        ({"adminAllowedCidrs": "203.0.113.0/24"}, "adminAllowedCidrs", "a list of at most 20 networks"),
        ({"adminAllowedCidrs": ["203.0.113.7/24"]}, "adminAllowedCidrs[0]", "a network in CIDR notation"),
        ({"adminAllowedCidrs": ["::/0", "0::/0"]}, "adminAllowedCidrs[1]", "each network once"),
        ({"imagePlatform": "linux/s390x"}, "imagePlatform", "linux/amd64, linux/arm64"),
        ({"workerPool": "[]"}, "workerPool", "no such key; did you mean workerPools? known keys:"),
        ({"webMinCont": 2}, "webMinCont", "no such key; did you mean webMinCount?"),
        (
            {"welcomeEmailRetryBackoffSeconds": 60, "welcomeEmailRetryMaxDelaySeconds": 30},
            "welcomeEmailRetryMaxDelaySeconds",
            "at least welcomeEmailRetryBackoffSeconds (60)",
        ),
        (
            {"welcomeEmailRetryMaxDelaySeconds": 3600, "welcomeEmailRetryWindowSeconds": 1800},
            "welcomeEmailRetryWindowSeconds",
            "at least welcomeEmailRetryMaxDelaySeconds (3600)",
        ),
        (
            {"taskSoftTimeLimitSeconds": 295},
            "emailTimeoutSeconds",
            "less than taskTimeLimitSeconds - taskSoftTimeLimitSeconds (5 s)",
        ),
        ({"signupRateLimit": "ten per minute"}, "signupRateLimit", "a count per period, e.g. 10/m"),
        (
            {"ephemeral": True, "protectResources": True},
            "protectResources",
            "allowed: false in an ephemeral stack",
        ),
        (
            {"dbDeletionProtection": True},
            "dbDeletionProtection",
            "false unless protectResources is true (AWS refuses the delete only after",
        ),
        (
            {"albDeletionProtection": True},
            "albDeletionProtection",
            "false unless protectResources is true",
        ),
        (
            {
                "workerPools": [
                    default_pool(queues=["default"]),
                    default_pool(name="mail", queues=["default"]),
                ]
            },
            "workerPools",
            "each queue in one pool only (in default and mail)",
        ),
    ],
)
def test_bad_value_is_refused_with_key_value_and_allowed_values(
    overrides: dict, key: str, message: str
) -> None:
    problems = problems_for(**overrides)
    assert key in problems, f"expected a problem for {key}, got {problems}"
    assert message in problems[key], f"unclear message for {key}: {problems[key]!r}"
    assert len(problems) == 1, f"one mistake must give one problem, got {problems}"


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_for(natMode="both", webCpu=300, redisClusterMode=True, logRetentionDays=-1)
    assert set(problems) == {"natMode", "webCpu/webMemory", "redisClusterMode", "logRetentionDays"}


def test_a_pool_may_reserve_messages_ahead_and_reserves_none_by_default() -> None:
    short = default_pool(name="short", queues=["fast"], prefetchMultiplier=8)
    config = validate(raw_config(workerPools=[default_pool(), short]))
    assert [pool.prefetch_multiplier for pool in config.workers.pools] == [1, 8]


def test_web_deployment_percentages_take_tenths_and_the_admin_may_stay_closed_or_open() -> None:
    config = validate(raw_config(webDeployment="canary", webCanaryPercent="2.5", adminAllowedCidrs=[]))
    assert (config.web.deployment.ecs_strategy, config.web.deployment.canary_percent) == ("CANARY", 2.5)
    everyone = validate(raw_config(webDeployment="linear", adminAllowedCidrs=["0.0.0.0/0", "::/0"]))
    assert everyone.web.deployment.shifts_traffic and not everyone.web.admin_allow_rules


def test_a_pool_runs_the_stack_wide_canary_unless_it_sets_its_own() -> None:
    quiet = default_pool(name="quiet", queues=["fast"], canaryMinutes=0)
    config = validate(raw_config(workerCanaryMinutes=7, workerPools=[default_pool(), quiet]))
    assert [pool.canary_minutes for pool in config.workers.pools] == [7, 0]


def test_missing_key_is_reported() -> None:
    raw = raw_config()
    del raw["natMode"]
    with pytest.raises(StackConfigError, match=r"natMode: got \(missing\); allowed: none, single, per_az"):
        validate(raw)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"workerPools": [default_pool(minCount=3, maxCount=2)]}, "workerPools[0].minCount"),
        ({"webCpu": 256, "webMemory": 4096}, "webCpu/webMemory"),
        ({"redisEngine": "memcached"}, "redisEngine"),
        ({"dbEngineVersion": "postgres-16"}, "dbEngineVersion"),
        ({"logRetentionDays": -1}, "logRetentionDays"),
        ({"natMode": "dual"}, "natMode"),
        ({"redisClusterMode": True}, "redisClusterMode"),
        ({"redisServerless": True}, "redisServerless"),
        ({"dbDeletionProtection": True}, "dbDeletionProtection"),
        ({"imageDockerfile": "app/Dockerfile.missing"}, "imageDockerfile"),
        # Another stack's database: the program knows which instance is this stack's.
        ({"dbRestoredIdentifier": "djcelery-prod-postgres-r202612011155"}, "dbRestoredIdentifier"),
        # Set in a stack file but declared nowhere: a typo must not be silently ignored.
        ({"webMinCont": 2}, "webMinCont"),
    ],
)
def test_invalid_config_stops_the_program_before_any_resource(overrides: dict, key: str) -> None:
    with pytest.raises(ProgramFailed) as failure:
        run_program("pr-123", {"ephemeral": True, **overrides})
    assert isinstance(failure.value.error, StackConfigError), failure.value
    assert failure.value.error.keys == [key]
    assert failure.value.resources == [], "a resource was declared before the config was validated"


def test_a_bad_email_url_is_refused_without_showing_the_secret() -> None:
    with pytest.raises(StackConfigError) as raised:
        validate(raw_config(emailUrl="mailto:admin:hunter2@example.com"))
    assert raised.value.keys == ["emailUrl"]
    assert "hunter2" not in str(raised.value), "the error message must not print the secret"
    assert "smtp+tls://" in str(raised.value), "the message names the allowed form"


def test_the_publish_interval_default_is_the_publishers_own() -> None:
    """One default for how often queue lengths are published: the app's schema."""
    declared = yaml.safe_load(PROJECT_FILE.read_text())["config"]["queueMetricsIntervalSeconds"]["default"]
    assert declared == schema.DEFAULT_INTERVAL_SECONDS


def test_a_restored_database_must_be_a_restore_of_this_stacks_own() -> None:
    config = validate(
        raw_config("prod", dbRestoredIdentifier="djcelery-prod-postgres-r202612011155"),
        stack_database="djcelery-prod-postgres",
    )
    assert config.database.restored_identifier == "djcelery-prod-postgres-r202612011155"
    with pytest.raises(StackConfigError, match="a restore of this stack's database: djcelery-dev-postgres-r"):
        validate(
            raw_config("prod", dbRestoredIdentifier="djcelery-prod-postgres-r202612011155"),
            stack_database="djcelery-dev-postgres",
        )
