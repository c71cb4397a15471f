# The ticktide image: every producer, consumer and tool is `ticktide <subcommand>`.
#   docker build -t ticktide .
#   docker run --rm -e TICKTIDE_BUS=kafka://broker:9092 ticktide consume features --metrics-port 9100
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /src
# numpy, numba, pandas and aiokafka install from wheels: no compiler needed.
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY streaming ./streaming
COPY producers ./producers
COPY consumers ./consumers
COPY ticktide ./ticktide
# the plug-in examples (docs/extending.md) and the sample daily prices the gateway's /workflows run on
COPY examples ./examples
COPY tests/data/stock_prices_20.csv /usr/share/ticktide/stock_prices_20.csv
# the feature kernels are compiled once here (Numba cache), so a container's first events are not slow
RUN pip install -c constraints.txt . \
 && useradd --system --uid 10001 --no-create-home ticktide \
 && mkdir -p /tmp/numba-cache /var/lib/ticktide/jobs \
 && ticktide features --input /usr/share/ticktide/stock_prices_20.csv > /dev/null \
 && chown -R ticktide /tmp/numba-cache /var/lib/ticktide/jobs

WORKDIR /app
USER ticktide
# /metrics (--metrics-port 9100 in docker-compose.yml); the simulator's and gateway's ports
EXPOSE 9100 8765 8080
ENTRYPOINT ["ticktide"]
CMD ["--help"]
