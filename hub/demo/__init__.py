"""`hub demo` / `make demo`: the main flow end to end, on the embedded Postgres and the sandboxes.

:mod:`.flow` runs the Dagster jobs in process and prints what each did; :mod:`.data` is
the CRM demo data set (sales team, customers, orders, to-dos) laid over what the ERP
and chat sandboxes hold.
"""

from hub.demo.flow import DEMO_SCHEMA, DemoSummary, job_table, run_demo

__all__ = ["DEMO_SCHEMA", "DemoSummary", "job_table", "run_demo"]
