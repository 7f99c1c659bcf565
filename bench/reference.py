"""The reference endpoint: a bare DRF view returning a constant, the ceiling of this stack.

Served at /bench/reference on the public domain only when the environment has BENCH_REFERENCE=1
(config/settings.py then routes the public domain through bench/urls.py); `python -m bench` sets
it for the servers it starts. It reads and writes nothing and knows no tenant or token.
"""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

CONSTANT = {"ok": True, "service": "licensing", "reference": 1}


class ReferenceView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def get(self, request):
        return Response(CONSTANT)
