"""The ``objects`` parameter of an AWS SecretProviderClass: what to fetch and where to write it.

Fields, defaults and validation follow aws/secrets-store-csi-driver-provider-aws (ASCP)
``provider/secret_descriptor.go``: each error carries ASCP's wording after the field it is
about (``objects[2].objectType: Invalid objectType: ssm``), so a message users search for still
matches, and names the place to fix. Object names and aliases are not secret (ASCP logs them).

Beyond ASCP, every file name is checked by the writer's own path rules here, and two objects
that would write the same file are refused, so a bad SPC fails before any request is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agent.errors import InvalidSecretProviderClass, PayloadError
from agent.fs.paths import validate_path
from agent.providers.aws.duplicates import check_duplicates
from agent.providers.common.goyaml import Struct, Value

Service = Literal["secretsmanager", "ssmparameter"]

# ASCP's typeMap: "ssm" is the service in an SSM ARN but not a valid objectType.
_SERVICE_OF = {
    "secretsmanager": "secretsmanager",
    "ssmparameter": "ssmparameter",
    "ssm": "ssmparameter",
}
_BAD_PATH = re.compile(r"(/\.\./)|(^\.\./)|(/\.\.$)")  # ASCP's badPathRE
_FILE_PERMISSION = re.compile(r"^[0-7]{4}$")  # ASCP's validFilePermissionRE
_ARN_SECTIONS = 6  # arn:partition:service:region:account:resource (aws-sdk-go-v2 arn.Parse)


@dataclass(frozen=True, slots=True)
class JmesPathFile:
    """One ``jmesPath`` entry: a string pulled out of the object's JSON into its own file."""

    path: str
    alias: str
    file_name: str
    mode: int | None


@dataclass(frozen=True, slots=True)
class Target:
    """What to ask a region for: a name (or ARN) and at most one way of choosing a version."""

    name: str
    version: str
    label: str


@dataclass(frozen=True, slots=True)
class AwsObject:
    """One entry of ``objects`` after validation."""

    index: int
    name: str  # objectName as written: a name or a full ARN
    service: Service
    alias: str
    file_name: str  # alias or name, with pathTranslation applied
    mode: int | None  # None: the volume's default mode
    primary: Target
    failover: Target  # the failoverObject, or the primary's target when there is none
    jmes: tuple[JmesPathFile, ...] = ()

    def target(self, use_failover: bool) -> Target:
        return self.failover if use_failover else self.primary


def _fail(where: str, message: str) -> InvalidSecretProviderClass:
    return InvalidSecretProviderClass(f"{where}: {message}")


def file_name(name: str, translate: str) -> str:
    """ASCP's GetFileName: ``/`` becomes the translation character, or with translation off
    a leading ``/`` is stripped (the rest become sub-directories)."""
    if translate:
        return name.replace("/", translate)
    return name.lstrip("/")


def parse_objects(document: Value, translate: str, regions: Sequence[str]) -> tuple[AwsObject, ...]:
    """Validate the ``objects`` document; raise InvalidSecretProviderClass naming the field.

    ``document`` is decoded with ASCP's decoder (sigs.k8s.io/yaml: an unquoted number or boolean
    in a string field becomes its text, field names match case-insensitively, unknown fields
    are ignored); ``regions`` is the primary region, then the failover region if any.
    """
    objects: list[AwsObject] = []
    for index, item in enumerate(document.sequence()):
        if item.is_null:
            raise _fail(item.where, "Empty descriptor entry in SecretProviderClass")
        objects.append(_parse_object(index, item.struct(), translate, regions))
    check_duplicates(objects)
    return tuple(objects)


def _parse_object(index: int, fields: Struct, translate: str, regions: Sequence[str]) -> AwsObject:
    where = f"objects[{index}]"
    name, object_type = fields.string("objectName"), fields.string("objectType")
    if not name:
        raise _fail(f"{where}.objectName", "Object name must be specified")
    service = _service(where, name, object_type, regions[0], "objectName")
    primary = Target(name, fields.string("objectVersion"), fields.string("objectVersionLabel"))
    if service == "ssmparameter" and primary.version and primary.label:
        raise _fail(
            f"{where}.objectVersionLabel",
            f"ssm parameters can not specify both objectVersion and objectVersionLabel: {name}",
        )
    alias = fields.string("objectAlias")
    name_field = "objectAlias" if alias else "objectName"
    path = _checked_file_name(f"{where}.{name_field}", alias or name, translate, name)
    permission = fields.string("filePermission")
    mode = _mode(f"{where}.filePermission", permission)
    jmes = _jmes_entries(fields.get("jmesPath"), translate, permission)
    failover = _failover(
        where, fields.get("failoverObject"), (service, object_type), alias, regions
    )
    if failover is not None and failover.version != primary.version:
        raise _fail(
            f"{where}.failoverObject.objectVersion",
            f"object versions must match between primary and failover regions: {name}",
        )
    # ASCP falls back to the primary's value for each field the failoverObject leaves empty.
    effective = primary
    if failover is not None:
        effective = Target(
            failover.name, failover.version or primary.version, failover.label or primary.label
        )
    return AwsObject(index, name, service, alias, path, mode, primary, effective, jmes)


def _service(where: str, name: str, object_type: str, region: str, field: str) -> Service:
    """ASCP's validateObjectName: an ARN must parse and name the region; without an ARN the
    objectType is required; objectType and the ARN's service must agree."""
    arn_service: str | None = None
    if name.startswith("arn:"):
        sections = name.split(":", _ARN_SECTIONS - 1)
        if len(sections) != _ARN_SECTIONS:
            raise _fail(f"{where}.{field}", f"Invalid ARN format in object name: {name}")
        arn_service, arn_region = sections[2], sections[3]
        if arn_region != region:
            raise _fail(f"{where}.{field}", f"ARN region must match region {region}: {name}")
    if not object_type:
        if arn_service is None:
            raise _fail(
                f"{where}.objectType",
                f"Must use objectType when a full ARN is not specified: {name}",
            )
        if arn_service not in _SERVICE_OF:
            raise _fail(f"{where}.{field}", f"Invalid service in ARN: {arn_service}")
        return _SERVICE_OF[arn_service]  # type: ignore[return-value]
    if object_type not in _SERVICE_OF or object_type == "ssm":
        raise _fail(
            f"{where}.objectType",
            f"Invalid objectType: {object_type} (use secretsmanager or ssmparameter)",
        )
    service = _SERVICE_OF[object_type]
    if arn_service is not None and _SERVICE_OF.get(arn_service) != service:
        raise _fail(f"{where}.objectType", f"objectType does not match ARN: {name}")
    return service  # type: ignore[return-value]


def _checked_file_name(where: str, value: str, translate: str, name: str) -> str:
    path = file_name(value, translate)
    if _BAD_PATH.search(path):
        raise _fail(where, f"path can not contain ../: {name}")
    try:
        validate_path(path)  # the writer's rules, checked before anything is fetched
    except PayloadError as err:
        raise _fail(where, err.message) from None
    return path


def _mode(where: str, permission: str) -> int | None:
    if not permission:
        return None
    if not _FILE_PERMISSION.fullmatch(permission):
        raise _fail(where, f"Invalid File Permission: {permission} (four octal digits, e.g. 0400)")
    # Upstream hands the number to Go's os.Chmod as an os.FileMode, where only the 0777 bits
    # mean permissions: "4755" ends up as 0755. Do the same rather than set special bits.
    return int(permission, 8) & 0o777


def _jmes_entries(
    value: Value | None, translate: str, parent_permission: str
) -> tuple[JmesPathFile, ...]:
    if value is None:
        return ()
    entries = []
    for item in value.sequence():
        at, fields = item.where, item.struct()
        path, alias = fields.string("path"), fields.string("objectAlias")
        if not path:
            raise _fail(f"{at}.path", "Path must be specified for JMES object")
        if not alias:
            raise _fail(f"{at}.objectAlias", "Object alias must be specified for JMES object")
        _compile(f"{at}.path", path)
        permission = fields.string("filePermission") or parent_permission
        mode = _mode(f"{at}.filePermission", permission)
        name = _checked_file_name(f"{at}.objectAlias", alias, translate, alias)
        entries.append(JmesPathFile(path, alias, name, mode))
    return tuple(entries)


def _compile(where: str, path: str) -> None:
    """A malformed expression fails here, before any fetch (ASCP finds out after fetching)."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(path)
    except JMESPathError:
        raise _fail(where, f"Invalid JMES Path: {path}.") from None


def _failover(
    where: str,
    value: Value | None,
    kind: tuple[Service, str],
    alias: str,
    regions: Sequence[str],
) -> Target | None:
    """The ``failoverObject``, checked in ASCP's order; ``kind`` is the primary's service and
    objectType (the failover entry has no objectType of its own)."""
    if value is None:
        return None
    at, fields = f"{where}.failoverObject", value.struct()
    name = fields.string("objectName")
    if not name:
        return None  # ASCP treats a failoverObject without objectName as absent
    if not alias:
        raise _fail(
            f"{where}.objectAlias",
            f"object alias must be specified for objects with failover entries: {name}",
        )
    if len(regions) < 2:
        raise _fail(
            f"{at}.objectName",
            f"failover object allowed only when failover region is defined: {name}",
        )
    service, object_type = kind
    if _service(at, name, object_type, regions[1], "objectName") != service:
        raise _fail(f"{at}.objectName", f"objectType does not match ARN: {name}")
    target = Target(name, fields.string("objectVersion"), fields.string("objectVersionLabel"))
    if service == "ssmparameter" and target.version and target.label:
        raise _fail(
            f"{at}.objectVersionLabel",
            f"ssm parameters can not specify both objectVersion and objectVersionLabel: {name}",
        )
    return target
