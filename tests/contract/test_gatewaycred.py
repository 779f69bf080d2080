from __future__ import annotations

import pytest

from interlock.contract.gatewaycred import (
    gateway_id_in_scope,
    mint_gateway_credential,
    verify_gateway_credential,
)

KEY = b"k" * 32


def test_a_minted_credential_verifies_to_its_scope() -> None:
    credential = mint_gateway_credential(KEY, "team-a/default")
    assert credential.startswith("ilgw1.")
    assert verify_gateway_credential(KEY, credential) == "team-a/default"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # another MAC
        lambda c: "ilgw1." + mint_gateway_credential(KEY, "team-b/default").split(".")[1] + "." + c.split(".")[2],
        lambda c: c.replace("ilgw1.", "ilgw2."),
        lambda c: c + ".x",
        lambda c: "ilgw1.%%%.@@@",
        lambda c: "",
    ],
)
def test_a_tampered_credential_does_not_verify(tamper) -> None:  # type: ignore[no-untyped-def]
    assert verify_gateway_credential(KEY, tamper(mint_gateway_credential(KEY, "team-a/default"))) is None


def test_another_signing_key_does_not_verify() -> None:
    assert verify_gateway_credential(b"o" * 32, mint_gateway_credential(KEY, "team-a/default")) is None


@pytest.mark.parametrize("scope", ["default", "a/b/c", "UPPER/x", "ns/", "/gw", "ns/gw\n"])
def test_a_scope_is_namespace_slash_gateway(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        mint_gateway_credential(KEY, scope)


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        mint_gateway_credential(b"short", "ns/gw")


def test_gateway_ids_under_the_scope_only() -> None:
    assert gateway_id_in_scope("ns/gw", "ns/gw/gw-7d9f-abcde")
    assert not gateway_id_in_scope("ns/gw", "ns/gw")
    assert not gateway_id_in_scope("ns/gw", "ns/gw2/pod")
    assert not gateway_id_in_scope("ns/gw", "other/gw/pod")


def test_a_gateway_reads_its_scope_from_its_credential_and_names_itself_under_it(monkeypatch) -> None:
    from interlock.contract.gatewaycred import credential_scope
    from interlock.gateway.settings import GatewaySettings

    credential = mint_gateway_credential(KEY, "team-a/default")
    assert credential_scope(credential) == "team-a/default"
    assert credential_scope("ilgw1.bm90IGEgc2NvcGU.x") is None
    assert credential_scope("an admin token") is None
    monkeypatch.delenv("INTERLOCK_GATEWAY_GATEWAY_ID", raising=False)
    named = GatewaySettings(control_plane_token=credential)
    assert named.gateway_id.startswith("team-a/default/")
    assert gateway_id_in_scope("team-a/default", named.gateway_id)
    assert GatewaySettings(control_plane_token=credential, gateway_id="team-a/default/pod-1").gateway_id.endswith(
        "pod-1"
    )
    monkeypatch.setenv("INTERLOCK_GATEWAY_GATEWAY_ID", "team-a/default/from-env")
    assert GatewaySettings(control_plane_token=credential).gateway_id == "team-a/default/from-env"
