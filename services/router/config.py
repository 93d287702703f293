from shared.settings import Settings


class RouterSettings(Settings):
    router_port: int = 8082
