"""Scheduling embedpipe: the nightly Airflow DAG (``nightly_dag``) and its Airflow-free settings (``nightly``)."""
