"""`modelreg model`: register models, manage maintainers and ownership, revoke versions."""

import click

from modelreg._hex import to_hex
from modelreg.cli.options import (
    VERSION,
    config_of,
    connection_options,
    home_of,
    json_option,
    open_registry,
    print_json,
)
from modelreg.errors import InputInvalid
from modelreg.service import audit as audit_lib


class _Address(click.ParamType):
    name = "address"

    def convert(self, value, param, ctx):
        from modelreg.chain.address import checksum_address  # loads web3, slow: --help should not wait

        try:
            return checksum_address(value)
        except InputInvalid as e:
            self.fail(str(e), param, ctx)


ADDRESS = _Address()


def _model_id(registry, model: str) -> int:
    return audit_lib.find_model(registry.events(), model)["id"]


def _done(as_json: bool, message: str, **fields) -> None:
    if as_json:
        print_json(fields)
    else:
        click.echo(message)


def _tx(receipt) -> dict:
    return {"tx": to_hex(receipt["transactionHash"]), "block": receipt["blockNumber"],
            "gas": receipt["gasUsed"]}


@click.group()
def model():
    """Register models and manage who may commit to them."""


@model.command("register")
@click.argument("name")
@click.option("--metadata", default="", help="Free text or JSON stored with the model (a description, a URL).")
@connection_options
@json_option
def register(name, metadata, as_json):
    """Register a new model NAME; you become its owner."""
    model_id, receipt = open_registry(write=True).client.register_model(name, metadata)
    _done(as_json, f"Registered model {name!r} as id {model_id}", model_id=model_id, name=name, **_tx(receipt))


@model.command("add-maintainer")
@click.argument("model_name", metavar="MODEL")
@click.argument("address", type=ADDRESS)
@connection_options
@json_option
def add_maintainer(model_name, address, as_json):
    """Let ADDRESS commit and revoke versions of MODEL (owner only)."""
    registry = open_registry(write=True)
    receipt = registry.client.add_maintainer(_model_id(registry, model_name), address)
    _done(as_json, f"{address} is now a maintainer of {model_name}", **_tx(receipt))


@model.command("remove-maintainer")
@click.argument("model_name", metavar="MODEL")
@click.argument("address", type=ADDRESS)
@connection_options
@json_option
def remove_maintainer(model_name, address, as_json):
    """Stop ADDRESS from committing to MODEL (owner only)."""
    registry = open_registry(write=True)
    receipt = registry.client.remove_maintainer(_model_id(registry, model_name), address)
    _done(as_json, f"{address} is no longer a maintainer of {model_name}", **_tx(receipt))


@model.command("transfer")
@click.argument("model_name", metavar="MODEL")
@click.argument("address", type=ADDRESS)
@connection_options
@json_option
def transfer(model_name, address, as_json):
    """Offer MODEL to ADDRESS; ownership moves when ADDRESS runs `model accept` (two steps)."""
    registry = open_registry(write=True)
    receipt = registry.client.transfer_ownership(_model_id(registry, model_name), address)
    _done(as_json, f"Offered {model_name} to {address}; it must accept", **_tx(receipt))


@model.command("accept")
@click.argument("model_name", metavar="MODEL")
@connection_options
@json_option
def accept(model_name, as_json):
    """Accept ownership of MODEL offered to your signer."""
    registry = open_registry(write=True)
    receipt = registry.client.accept_ownership(_model_id(registry, model_name))
    _done(as_json, f"You now own {model_name}", **_tx(receipt))


@model.command("revoke")
@click.argument("model_name", metavar="MODEL")
@click.argument("version", type=VERSION)
@click.option("--reason", required=True, help="Why the version must not be used; stored on-chain.")
@click.option("--replacement", type=click.IntRange(0, VERSION.max), default=0, help="The version to use instead (optional).")
@connection_options
@json_option
def revoke(model_name, version, reason, replacement, as_json):
    """Revoke VERSION of MODEL: it stays readable, marked revoked with the reason."""
    registry = open_registry(write=True)
    receipt = registry.client.revoke_version(_model_id(registry, model_name), version, reason, replacement)
    _done(as_json, f"Revoked {model_name} version {version}", **_tx(receipt))


@click.command()
@click.option("--force", is_flag=True,
              help="Deploy even though a registry is recorded for this chain (it stays listed in deployments.json).")
@connection_options
@json_option
def deploy(force, as_json):
    """Deploy a ModelRegistry on the configured chain and record it for later commands."""
    from modelreg.service.connect import deploy as deploy_registry  # web3 is slow to import

    client = deploy_registry(home_of(), config_of(), force=force)
    _done(as_json, f"Deployed ModelRegistry at {client.address} on chain {client.chain_id}",
          address=client.address, chain_id=client.chain_id, block=client.from_block)
