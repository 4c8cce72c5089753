"""One asset graph per contract in ``schemas/contracts/``: adding a dataset is adding a YAML file."""

import dagster as dg

from pipelines.factory import dataset_definitions
from pipelines.settings import contracts_dir
from schemas import load_contracts


@dg.definitions
def datasets() -> dg.Definitions:
    return dg.Definitions.merge(*[dataset_definitions(c) for c in load_contracts(contracts_dir())])
