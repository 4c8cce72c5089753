"""Resources, bound once from the environment (ASSAY_HOME, ASSAY_CATALOG_URL, ASSAY_CONN_*, ASSAY_FAULT)."""

import dagster as dg

from pipelines.settings import assay_resource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"assay": assay_resource()})
