"""OpenAPI descriptions of the platform's authentication schemes (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class OperatorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "aggregator.core.access.authentication.OperatorTokenAuthentication"
    name = "operatorToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "op_<key id>_<secret>",
            "description": "Operator API token (`manage.py issue_operator_token`); carries the user's roles.",
        }


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "aggregator.core.access.devices.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "dev_<key id>_<secret> or gw_<key id>_<secret>",
            "description": "Device or gateway token issued by an operator; sees only its own devices.",
        }


class MarketTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dispatch.api.inbound.MarketTokenAuthentication"
    name = "marketToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mkt_<key id>_<secret>",
            "description": "Market or utility token (`manage.py issue_market_token`): sends dispatch instructions.",
        }
