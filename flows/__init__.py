"""One Prefect flow per DVC stage: read params and inputs, call the library, write outputs.

Importing synthsmith.orchestration first sets Prefect's defaults before Prefect is imported.
"""

import synthsmith.orchestration  # noqa: F401
