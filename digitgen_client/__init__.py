"""digitgen_client: labelled synthetic digits from a digitgen service, as NumPy arrays or a torch Dataset.

Needs httpx, numpy and tenacity; torch only for `torch_dataset`. It never imports the service.
"""
from digitgen_client._common import DigitgenError
from digitgen_client.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "DigitgenError"]
