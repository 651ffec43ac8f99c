"""The TRT application's own session listing, as its RedisSessionManager does it (seed 004):
for every member of the active-sessions index, load the state hash (HGETALL, parsing the
JSON and integer fields as the application does) and read its TTL, one round trip each.

Usage: python3 trt_naive_client.py REDIS_URL   ->  prints "<live sessions> <seconds>"
Needs redis-py (pip install redis).
"""
import json
import sys
import time

import redis


class RedisSessionManager:
    def __init__(self, redis_url):
        self.redis = redis.from_url(redis_url, decode_responses=True)

    def load_session_state(self, session_id):
        key = f"trt:session:{session_id}:state"
        data = self.redis.hgetall(key)
        if not data:
            return None
        if "stage_1_completion" in data:
            data["stage_1_completion"] = json.loads(data["stage_1_completion"])
        if "body_questions_asked" in data:
            data["body_questions_asked"] = int(data["body_questions_asked"])
        return data


def main():
    manager = RedisSessionManager(sys.argv[1])
    started = time.perf_counter()
    live = 0
    for session_id in manager.redis.zrevrange("trt:active_sessions", 0, -1):
        state = manager.load_session_state(session_id)
        manager.redis.ttl(f"trt:session:{session_id}:state")
        if state:
            live += 1
    print(live, time.perf_counter() - started)


if __name__ == "__main__":
    main()
