# Runs inside the limited child process started by progeval.execute.run_untrusted (python -I -S -c).
# It reads {"programs": [...], "limits": {...}} from stdin, sets its own resource limits before it
# runs anything, and prints one JSON list of {"output": str} / {"error": str}.
import json
import resource
import sys

request = json.loads(sys.stdin.read())
limits = request["limits"]
cpu = int(limits["cpu_seconds"])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
max_chars = int(limits["output_chars"])

results = []
for source in request["programs"]:
    out = []
    size = [0]

    def capture(value, out=out, size=size):
        text = str(value)
        size[0] += len(text) + 1
        if size[0] > max_chars:
            raise RuntimeError(f"output longer than {max_chars} characters")
        out.append(text)

    try:
        exec(
            compile(source, "<untrusted>", "exec"),
            {"__builtins__": {}, "print": capture, "range": range},
        )
    except Exception as err:  # any failure of the program itself is reported, never raised
        results.append({"error": f"{type(err).__name__}: {err}"[:300]})
        continue
    if len(out) != 1:
        results.append({"error": f"program printed {len(out)} lines; expected 1"})
    else:
        results.append({"output": out[0]})
sys.stdout.write(json.dumps(results))
