"""Custos: the company's customer-information protection policy, run as code.

The package is the domain library behind the Airflow DAGs in ``dags/``: the encrypted
vault, the key hierarchy, the evidence store and the control checks. Nothing here imports
Airflow, so every duty can be unit-tested and run from the ``custos`` CLI as well.
"""

__version__ = "0.1.0"
