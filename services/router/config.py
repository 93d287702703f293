from shared.settings import Settings


class RouterSettings(Settings):
    router_port: int = 8082
    stuck_after_days: int = 7  # paraaf_stuck_requests counts requests pending longer than this
