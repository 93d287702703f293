from services.router.main import create_app
from shared.service import run

run(create_app)
