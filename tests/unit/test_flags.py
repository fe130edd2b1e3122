"""Upstream's flags, defaults and Go value syntax; invalid values name the flag."""

from __future__ import annotations

import pytest

from agent.config import Settings, parse_duration, parse_size, socket_path_from_endpoint
from agent.errors import ConfigError
from agent.flags import parse_settings


def test_defaults_match_upstream() -> None:
    settings, version = parse_settings([])
    assert not version
    assert settings.endpoint == "unix://tmp/csi.sock"
    assert settings.socket_path == "/tmp/csi.sock"
    assert settings.driver_name == "secrets-store.csi.k8s.io"
    assert settings.provider_volume == "/var/run/secrets-store-csi-providers"
    assert settings.additional_provider_volume_paths == (
        "/etc/kubernetes/secrets-store-csi-providers",
    )
    assert settings.metrics_addr == ":8095"
    assert settings.enable_secret_rotation is False
    assert settings.rotation_poll_interval == 120.0
    assert settings.max_call_recv_msg_size == 4194304
    assert settings.provider_health_check_interval == 120.0
    assert settings.mount_mode == "tmpfs"


def test_chart_style_arguments() -> None:
    settings, _ = parse_settings(
        [
            "--endpoint=unix:///csi/csi.sock",
            "--nodeid=node-1",
            "--provider-volume=/provider",
            "--additional-provider-volume-paths=/etc/a,/etc/b",
            "--metrics-addr=:9999",
            "--enable-secret-rotation=true",
            "--rotation-poll-interval=1h30m",
            "--log-format-json",
            "-v=5",
        ]
    )
    assert settings.socket_path == "/csi/csi.sock"
    assert settings.node_id == "node-1"
    assert settings.additional_provider_volume_paths == ("/etc/a", "/etc/b")
    assert settings.enable_secret_rotation is True
    assert settings.rotation_poll_interval == 5400.0
    assert settings.log_format_json is True
    assert settings.verbosity == 5


def test_go_single_dash_long_flags() -> None:
    settings, _ = parse_settings(["-nodeid", "n", "-enable-secret-rotation=false", "-v", "2"])
    assert settings.node_id == "n"
    assert settings.enable_secret_rotation is False
    assert settings.verbosity == 2


def test_plugin_preference_and_pod_identity_endpoint() -> None:
    settings, _ = parse_settings(
        [
            "--prefer-plugin-providers=aws,vault",
            "--aws-pod-identity-endpoint=http://127.0.0.1:2703/v1/credentials",
        ]
    )
    assert settings.prefer_plugin_providers == ("aws", "vault")
    assert settings.aws_pod_identity_endpoint == "http://127.0.0.1:2703/v1/credentials"


def test_a_space_in_the_plugin_preference_is_shown() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(["--prefer-plugin-providers=aws, vault"])
    assert "not provider names: ' vault' (comma-separated, no spaces" in info.value.message


# Upstream v1.6.0's flags (reference upstream-driver §1), each with upstream's default as its
# value: a DaemonSet written for upstream that spells out its defaults, as upstream's static
# manifests do, starts the agent unchanged. The klog flags come from klog.InitFlags.
UPSTREAM_FLAGS_WITH_DEFAULTS = [
    "--endpoint=unix://tmp/csi.sock",
    "--drivername=secrets-store.csi.k8s.io",
    "--nodeid=",
    "--log-format-json=false",
    "--provider-volume=/var/run/secrets-store-csi-providers",
    "--additional-provider-volume-paths=/etc/kubernetes/secrets-store-csi-providers",
    "--metrics-addr=:8095",
    "--enable-secret-rotation=false",
    "--rotation-poll-interval=2m0s",
    "--enable-pprof=false",
    "--pprof-port=6065",
    "--max-call-recv-msg-size=4194304",
    "--version=false",
    "--provider-health-check=false",
    "--provider-health-check-interval=2m0s",
    "--metrics-backend=Prometheus",
    # klog
    "--v=0",
    "--vmodule=",
    "--logtostderr=true",
    "--alsologtostderr=false",
    "--log_dir=",
    "--log_file=",
    "--log_file_max_size=1800",
    "--stderrthreshold=2",
    "--add_dir_header=false",
    "--skip_headers=false",
    "--skip_log_headers=false",
    "--one_output=false",
    "--log_backtrace_at=",
    "--legacy_stderr_threshold_behavior=true",
]


def test_every_upstream_flag_is_accepted_with_upstreams_default() -> None:
    settings, version = parse_settings(UPSTREAM_FLAGS_WITH_DEFAULTS)
    assert settings == parse_settings([])[0]
    assert version is False


@pytest.mark.parametrize(
    "argv",
    [
        ["-logtostderr", "-v", "3", "-vmodule", "publish=5"],  # Go's single dash, value apart
        ["--alsologtostderr", "--stderrthreshold=WARNING", "--log_dir", "/var/log"],
        ["--skip_headers=true", "--one_output", "--stderrthreshold=info", "--add_dir_header"],
        ["--log_file=/var/log/a.log", "--log_file_max_size=0", "--log_backtrace_at=x.go:10"],
    ],
)
def test_klog_flags_are_accepted_and_change_nothing_but_verbosity(argv: list[str]) -> None:
    settings, _ = parse_settings(argv)
    assert settings.log_format_json is False
    assert settings.verbosity == (3 if "-v" in argv else 0)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--logtostderr=maybe"], "--logtostderr"),
        (["--log_file_max_size=-1"], "--log_file_max_size"),
        (["--log_file_max_size=big"], "--log_file_max_size"),
        (["--stderrthreshold=LOUD"], "--stderrthreshold"),
    ],
)
def test_bad_klog_values_name_the_flag(argv: list[str], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(argv)
    assert names in info.value.message


def test_version_flag() -> None:
    assert parse_settings(["--version"])[1] is True


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--rotation-poll-interval=2x"], "--rotation-poll-interval"),
        (["--enable-secret-rotation=maybe"], "--enable-secret-rotation"),
        (["--mount-mode=nfs"], "--mount-mode"),
        (["--endpoint=tcp://0.0.0.0:1"], "--endpoint"),
        (["--metrics-backend=statsd"], "--metrics-backend"),
        (["--max-call-recv-msg-size=0"], "--max-call-recv-msg-size"),
        (["--provider-timeout=3m"], "--provider-timeout"),
        (["--tmpfs-size=lots"], "--tmpfs-size"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--metrics-addr=nonsense"], "--metrics-addr"),
        (["--health-addr=[::1"], "--health-addr"),
        (["--tmpfs-size=0"], "--tmpfs-size"),
        (["--max-payload-size=0"], "--max-payload-size"),
        (["--max-payload-size=big"], "--max-payload-size"),
        (["--metrics-addr=:8095\u00b2"], "--metrics-addr"),
        (["--trusted-file-dirs=/etc/../"], "--trusted-file-dirs"),
        (["--trusted-file-dirs=relative/dir"], "--trusted-file-dirs"),
        (["--vault-address=unix://run/x.sock"], "--vault-address"),
        (["--azure-cloud-name=Mars"], "--azure-cloud-name"),
        (["--azure-construct-pem-chain=maybe"], "--azure-construct-pem-chain"),
        (["--endpoint=unix:///" + "x" * 120], "--endpoint"),
        (["--prefer-plugin-providers=aws,../x"], "--prefer-plugin-providers"),
        (["--aws-pod-identity-endpoint=169.254.170.23"], "--aws-pod-identity-endpoint"),
    ],
)
def test_invalid_values_name_the_flag(argv: list[str], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(argv)
    assert names in info.value.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("90s", 90.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        # What else Go's time.ParseDuration takes.
        ("+5s", 5.0),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("1h1.5m", 3690.0),
        ("3µs", 3e-6),  # U+00B5 MICRO SIGN
        ("3μs", 3e-6),  # U+03BC GREEK SMALL LETTER MU
        ("-0", 0.0),
        ("0.0000000001s", 0.0),  # below a nanosecond: truncated, as in Go
        ("00000000000000000000000000001s", 1.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


# Go's bound: int64 nanoseconds, 9223372036.854775807 s.
GO_MAX_DURATION = "2562047h47m16.854775807s"


@pytest.mark.parametrize(
    "text",
    [
        GO_MAX_DURATION,
        "9223372036854775807ns",
        "2562047h47m16s854ms775us807ns",
        "2562047.7880152155h",  # the float fraction lands just below the bound, as in Go
    ],
)
def test_the_longest_go_duration_is_accepted(text: str) -> None:
    assert parse_duration(text) == pytest.approx(9223372036.854775807)


@pytest.mark.parametrize(
    "text",
    [
        "2562047h47m16.854775808s",
        "9223372036854775808ns",
        "2562048h",
        "9223372037s",
        "153722868m",
        "99999999999999999999ns",  # overflows while reading the number itself
        "2562047h2562047h",  # each part fits, the sum does not
        "1" + "0" * 30 + "h",
    ],
)
def test_durations_beyond_go_int64_nanoseconds_are_invalid(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid duration '{text}'"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["2", "m", "2mm", "-1s", "1d", "", ".s", "1.5", "1s ", "+", "s1"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


DURATION_FLAGS = [
    "--provider-health-check-interval",
    "--provider-timeout",
    "--shutdown-grace",
    "--pod-cleanup-grace-period",
    "--cache-sync-timeout",
    "--secret-resync-interval",
    "--rotation-poll-interval",
    "--rotation-min-poll-interval",
]


@pytest.mark.parametrize("flag", DURATION_FLAGS)
def test_every_duration_flag_refuses_what_go_refuses(flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings([f"{flag}=2562048h"])
    assert flag in info.value.message
    assert "invalid duration '2562048h'" in info.value.message


@pytest.mark.parametrize(
    ("argv", "limit"),
    [
        ([], 16 * 2**20),  # default: 16Mi
        (["--max-call-recv-msg-size=33554432"], 33554432),  # upstream's remedy raises it too
        (["--max-call-recv-msg-size=1048576"], 16 * 2**20),  # never below the default
        (["--max-call-recv-msg-size=33554432", "--max-payload-size=8Mi"], 8 * 2**20),
        (["--max-payload-size=64Mi"], 64 * 2**20),
    ],
)
def test_payload_limit_follows_the_receive_limit_unless_set(argv: list[str], limit: int) -> None:
    assert parse_settings(argv)[0].payload_limit == limit


def test_debug_loggers_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_settings([])[0].debug_loggers == ()
    assert parse_settings(["-v=5"])[0].debug_loggers == ()  # -v alone never opens them
    assert parse_settings(["--debug-loggers=hpack,h2"])[0].debug_loggers == ("hpack", "h2")
    monkeypatch.setenv("SECRETS_STORE_AGENT_DEBUG_LOGGERS", "grpclib")
    assert parse_settings([])[0].debug_loggers == ("grpclib",)
    assert parse_settings(["--debug-loggers="])[0].debug_loggers == ()  # the flag wins


def test_sizes() -> None:
    assert parse_size("64Mi") == 64 * 2**20
    assert parse_size("1G") == 10**9
    assert parse_size("4096") == 4096


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [("unix:///csi/csi.sock", "/csi/csi.sock"), ("unix://tmp/csi.sock", "/tmp/csi.sock")],
)
def test_endpoint_parsing_like_upstream(endpoint: str, path: str) -> None:
    assert socket_path_from_endpoint(endpoint) == path
    assert Settings(endpoint=endpoint).socket_path == path


def test_upstream_azure_provider_flags() -> None:
    settings, _ = parse_settings([])
    assert settings.azure_cloud_name == "AzurePublicCloud"
    assert settings.azure_construct_pem_chain is True
    assert settings.azure_write_cert_and_key_in_separate_files is False
    settings, _ = parse_settings(
        [
            "-azure-cloud-name=azurechinacloud",
            "--azure-construct-pem-chain=false",
            "--azure-write-cert-and-key-in-separate-files",
        ]
    )
    assert settings.azure_cloud_name == "azurechinacloud"
    assert settings.azure_construct_pem_chain is False
    assert settings.azure_write_cert_and_key_in_separate_files is True


def test_builtin_providers_flag() -> None:
    settings, _ = parse_settings(["--builtin-providers=vault,aws"])
    assert settings.builtin_providers == ("vault", "aws")
    assert parse_settings(["--builtin-providers="])[0].builtin_providers == ()
    assert set(parse_settings([])[0].builtin_providers) == {
        "vault",
        "openbao",
        "aws",
        "azure",
        "gcp",
    }
    with pytest.raises(
        ConfigError, match=r"--builtin-providers: not built-in providers: 'akeyless'"
    ):
        parse_settings(["--builtin-providers=vault,akeyless"])


def test_a_provider_left_out_of_builtin_providers_is_a_plugin_name() -> None:
    from agent.provider_setup import builtin_factories
    from agent.providers.factories import BUILTIN_FACTORIES

    assert set(builtin_factories(("aws", "gcp"))) == {"aws", "gcp"}
    assert builtin_factories(tuple(BUILTIN_FACTORIES)) == dict(BUILTIN_FACTORIES)


def test_the_startup_configuration_hides_credentials_in_urls() -> None:
    from agent.lifecycle import effective_configuration

    settings, _ = parse_settings(
        ["--vault-address=https://user:pa55@vault.example:8200", "--nodeid=node-a"]
    )
    shown = effective_configuration(settings)["settings"]
    assert isinstance(shown, dict)
    assert shown["vault_address"] == "https://[REDACTED]@vault.example:8200"
    assert "pa55" not in str(shown)
    assert shown["node_id"] == "node-a" and shown["payload_limit"] == settings.payload_limit
