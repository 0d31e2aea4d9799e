"""Dagster definitions for WeCom: directory and external contacts in, reminders out."""
