"""Read-only checks that a commit can succeed, run before it registers, pins or sends anything.

A commit writes in three places (IPFS pins, the chain, the data directory) and the chain keeps
what it is sent: a model name registered on a real chain is claimed for good and paid for in
gas. So every input a transaction could refuse is checked first, with reads only: the model
name, the signer's funds and rights, the parent and the dataset record.
"""

from modelreg.chain.names import check_model_name
from modelreg.errors import (
    AccessDenied,
    DatasetNotFound,
    InsufficientFunds,
    ModelNotFound,
    ModelregError,
    ParentNotFound,
)
from modelreg.records import VersionRef

# Gas a first commit may take at most: register the model and a dataset, commit a version (each
# well under 300k on every chain tested; bench/gas.py), with room for price moves.
COMMIT_GAS = 1_000_000


def check_commit(client, model: str, *, parent: VersionRef | int | None = None, dataset_root: str | None = None,
                 dataset_registered_by_signer: bool = False) -> int | None:
    """Raise the error a commit of the next version of `model` would meet, before anything is written.

    Args:
        client: the `RegistryClient` with the signer that will commit.
        parent: a `VersionRef`, or a version number of `model`, or None.
        dataset_root: the dataset root the version will name, or None.
        dataset_registered_by_signer: True when the commit registers the dataset itself first.

    Returns:
        The model's id, or None if the model is new (the commit registers it, owned by the signer).
    """
    check_model_name(model)
    account = client.signer.address
    balance, price = client.balance(account), client.gas_price()
    if balance < COMMIT_GAS * price:
        raise InsufficientFunds(f"the signer {account} holds {balance} wei on chain {client.chain_id}, less "
                                f"than the {COMMIT_GAS * price} wei a commit may cost at the current gas price")
    try:
        model_id = client.model_id(model)
    except ModelNotFound:
        model_id, owner = None, account
    else:
        owner = client.get_model(model_id).owner
        if owner.lower() != account.lower() and not client.is_maintainer(model_id, account):
            raise AccessDenied(f"the signer {account} is neither the owner ({owner}) nor a maintainer of model "
                               f"{model!r}, so it cannot commit to it")
    _check_parent(client, model, model_id, parent)
    if dataset_root is not None and not dataset_registered_by_signer:
        accounts = dict.fromkeys([account, owner])  # the committer's record first, then the owner's
        if not any(client.dataset_id(dataset_root, a) for a in accounts):
            raise DatasetNotFound(f"dataset root {dataset_root} has no record by {' or '.join(accounts)} (the "
                                  f"committer or the owner of model {model!r}); register the dataset first")
    return model_id


def _check_parent(client, model: str, model_id: int | None, parent: VersionRef | int | None) -> None:
    if parent is None:
        return
    if isinstance(parent, int):
        if model_id is None:
            raise ParentNotFound(f"model {model!r} is not registered yet, so it has no version {parent} to be "
                                 "the parent; leave the parent out for its first version, or name another "
                                 "model's version")
        parent = VersionRef(model_id, parent)
    try:
        count = client.version_count(parent.model_id)
    except ModelregError:
        raise ParentNotFound(f"no model has id {parent.model_id}, so it holds no parent version") from None
    if not 1 <= parent.version <= count:
        name = model if parent.model_id == model_id else _name_of(client, parent.model_id)
        raise ParentNotFound(f"model {name!r} has no version {parent.version} to be the parent "
                             f"(it has {count} version{'s' if count != 1 else ''})")


def _name_of(client, model_id: int) -> str:
    try:
        return client.get_model(model_id).name
    except ModelregError:  # an id with no model: say the id
        return f"#{model_id}"
