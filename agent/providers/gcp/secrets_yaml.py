"""The ``secrets`` parameter and ``extractYAMLKey`` payloads, decoded as the upstream provider
decodes them: gopkg.in/yaml.v3 (its ``config/config.go`` unmarshals into ``[]*Secret`` with
string fields and ``Mode *int32``; ``util/key_extractor.go`` into ``map[string]any``), through
the shared Go-compatible loader. So ``mode: 0440`` is 288, ``mode: "0440"`` fails naming the
field (a string into an int32), an unquoted ``resourceName: 123`` is the text "123", and
``extractYAMLKey`` sees ``yes`` as a string, exactly as yaml.v3 does.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import InvalidSecretProviderClass
from agent.providers.common.goyaml import Decoder, GoYAMLError, load

FIELDS = ("resourceName", "fileName", "path", "extractJSONKey", "extractYAMLKey", "mode")


@dataclass(frozen=True, slots=True)
class RawSecret:
    """One entry as Go's ``Secret`` struct holds it (absent and null fields are zero)."""

    resource_name: str = ""
    file_name: str = ""
    path: str = ""
    extract_json_key: str = ""
    extract_yaml_key: str = ""
    mode: int | None = None


def load_secrets(text: str) -> tuple[list[RawSecret], list[str]]:
    """Decode the list; return it with warnings about keys upstream silently ignores.

    Raises InvalidSecretProviderClass (GoYAMLError) naming ``secrets[i].<field>``."""
    out: list[RawSecret] = []
    warnings: list[str] = []
    for item in load(text, Decoder.YAML_V3, where="secrets").sequence():
        if item.is_null:
            # Upstream appends a nil *Secret here and crashes on it later.
            raise InvalidSecretProviderClass(f"{item.where}: is empty")
        fields = item.struct()
        unknown = fields.unknown(FIELDS)
        if unknown:
            warnings.append(f"{item.where}: unknown keys ignored: {', '.join(unknown)}")
        out.append(
            RawSecret(
                resource_name=fields.string("resourceName"),
                file_name=fields.string("fileName"),
                path=fields.string("path"),
                extract_json_key=fields.string("extractJSONKey"),
                extract_yaml_key=fields.string("extractYAMLKey"),
                mode=fields.integer("mode", bits=32, signed=True),
            )
        )
    return out, warnings


def load_document(payload: bytes) -> dict[str, object]:
    """A secret's payload as yaml.v3 decodes it into ``map[string]any`` (an empty document is
    an empty map). Raises ValueError when it is not YAML, or not a mapping."""
    try:
        return load(payload.decode("utf-8"), Decoder.YAML_V3, where="payload").any_map()
    except (UnicodeDecodeError, GoYAMLError) as err:
        raise ValueError(type(err).__name__) from None
