-- The GCRA check of one delegated call, atomic in the store (`store/shared/limits.rs` runs it;
-- the decisions are those of `delegation::rate::Limiter::check_all`).
-- KEYS: the call's rate keys. ARGV[2i-1], ARGV[2i]: key i's interval and burst allowance (µs).
-- Time is the store's (`TIME`, µs), so the replicas' clocks do not matter. A key holds its
-- theoretical arrival time; a missing or passed one counts as now.
-- Returns 0 when allowed (every key charged, each expiring once its time has passed, rounded up
-- to the next millisecond plus one), otherwise the longest wait in µs (no key charged).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local after = {}
local wait = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local allowance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  after[i] = tat + interval
  local from = after[i] - allowance
  if from - now > wait then wait = from - now end
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  local ttl = math.ceil((after[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', after[i]), 'PX', ttl)
end
return 0
