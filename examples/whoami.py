"""Ask the local managed-identity endpoint for a token, as every Azure SDK does, and say what came back."""

import json
import os
import urllib.request

url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
# S310: the URL is the endpoint azexec gives, http://127.0.0.1:PORT/…, not one a user typed.
ask = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})  # noqa: S310
answer = json.load(urllib.request.urlopen(ask))  # noqa: S310
print(f"got a token for {answer['resource']} ({len(answer['access_token'])} characters, not shown)")
