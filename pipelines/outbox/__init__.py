"""Dagster definitions for outbound work: CRM orders to the ERP, the outbox sensor and checks."""
