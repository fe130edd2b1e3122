"""SSM batching and reply matching (pure parts of fetch.py)."""

from __future__ import annotations

import pytest

from agent.providers.aws.config import parse_config
from agent.providers.aws.errors import AwsRegionalError
from agent.providers.aws.fetch import _match_parameters, ssm_batches
from agent.providers.aws.objects import AwsObject


def parameters(objects: str) -> tuple[AwsObject, ...]:
    return parse_config({"objects": objects, "region": "us-east-1"}, {}).objects


def names(batches: list[list[AwsObject]]) -> list[list[str]]:
    return [[f"{o.name}:{o.primary.version or o.primary.label}" for o in b] for b in batches]


def test_batches_of_ten_in_spc_order() -> None:
    objects = parameters(
        "".join(f"- {{objectName: p{i}, objectType: ssmparameter}}\n" for i in range(23))
    )
    assert [len(batch) for batch in ssm_batches(objects)] == [10, 10, 3]
    assert [o.index for batch in ssm_batches(objects) for o in batch] == list(range(23))


def test_two_versions_of_one_parameter_never_share_a_call() -> None:
    objects = parameters(
        """
        - {objectName: db, objectType: ssmparameter}
        - {objectName: db, objectType: ssmparameter, objectAlias: v1, objectVersion: "1"}
        - {objectName: db, objectType: ssmparameter, objectAlias: same, objectVersion: "1"}
        - {objectName: other, objectType: ssmparameter}
        """
    )
    assert names(ssm_batches(objects)) == [["db:", "other:"], ["db:1", "db:1"]]


def test_a_parameter_missing_from_the_reply_is_the_regions_fault() -> None:
    (obj,) = parameters("- {objectName: db, objectType: ssmparameter}")
    with pytest.raises(AwsRegionalError, match="InvalidResponse: no value returned for db"):
        _match_parameters([(obj, obj.primary)], [], "us-east-1")


def test_a_reply_is_matched_by_name_or_arn() -> None:
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/db"
    (by_name, by_arn) = parameters(
        f"- {{objectName: /db, objectType: ssmparameter}}\n"
        f"- {{objectName: '{arn}', objectAlias: a}}"
    )
    reply = [{"Name": "/db", "ARN": arn, "Value": "v", "Version": 4}]
    wanted = [(by_name, by_name.primary), (by_arn, by_arn.primary)]
    fetched = _match_parameters(wanted, reply, "us-east-1")
    assert [(f.obj.index, f.value, f.version) for f in fetched] == [(0, b"v", "4"), (1, b"v", "4")]
