-- wrk script: every request carries a header of its own, named by the first argument after
-- `--` (Idempotency-Key for the keyed case, X-Padding for the same work without a key).
-- The values are a random per-process prefix and a counter, so no two runs share a key.
local name, prefix, n = "Idempotency-Key", "", 0

function init(args)
  if args[1] then name = args[1] end
  local f = io.open("/dev/urandom", "rb")
  local bytes = f:read(8)
  f:close()
  prefix = bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end) .. "-"
end

function request()
  n = n + 1
  return wrk.format(nil, nil, {[name] = prefix .. n})
end
