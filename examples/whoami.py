"""Ask the local managed-identity endpoint for a token, as every Azure SDK does, and say what came back."""

import json
import os
import urllib.request

url = os.environ["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://management.azure.com/"
ask = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]})
answer = json.load(urllib.request.urlopen(ask))  # noqa: S310 - the endpoint azexec gives, on 127.0.0.1
print(f"got a token for {answer['resource']} ({len(answer['access_token'])} characters, not shown)")
