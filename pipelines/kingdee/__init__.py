"""Dagster definitions for Kingdee K/3 Cloud: ERP inbound assets, reconciliation, schedule."""
