"""What data must look like: ODCS contracts, their pandera schemas, and row-level validation."""

from schemas.contract import (
    CLASSIFICATIONS,
    Column,
    Contract,
    Rule,
    classification_rank,
    load_contract,
    load_contracts,
)
from schemas.errors import ContractError, SchemaError, ValidationError
from schemas.parse import TextFormat, dtype_of
from schemas.validate import CompiledContract, Validation, compile_contract, schema_problems, validate

__all__ = [
    "CLASSIFICATIONS",
    "Column",
    "CompiledContract",
    "Contract",
    "ContractError",
    "Rule",
    "SchemaError",
    "TextFormat",
    "Validation",
    "ValidationError",
    "classification_rank",
    "compile_contract",
    "dtype_of",
    "load_contract",
    "load_contracts",
    "schema_problems",
    "validate",
]
