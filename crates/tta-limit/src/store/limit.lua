-- tta-limit's counters: the only writer of its keys. See store/mod.rs for the rule.
-- KEYS: per line, a hash (w: window index, used, res: reserved) and a sorted set of the
--   reservations in flight (member "id:amount", score: when it lapses, in ms).
-- ARGV[1]: "reserve" or "settle"; ARGV[2]: the reservation id; ARGV[3]: hold, ms; then
--   per line three values. reserve: window ms, cap, amount (-1: the rest).
--   settle: window ms, amount reserved, amount used.
-- Time is the server's, so every replica sees the same windows.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[3])
local lines = #KEYS / 2

local function save(c)
  redis.call('HSET', c.h, 'w', string.format('%d', c.index), 'used',
    string.format('%d', c.used), 'res', string.format('%d', c.res))
  redis.call('PEXPIRE', c.h, math.max(c.ends, hold) + 1000)
end

-- A line's counter now: its window rolled, its lapsed reservations given back.
local function load(i, window)
  local c = { h = KEYS[2 * i - 1], z = KEYS[2 * i] }
  c.index = math.floor(now / window)
  c.ends = (c.index + 1) * window - now
  local state = redis.call('HMGET', c.h, 'w', 'used', 'res')
  c.used = tonumber(state[2]) or 0
  c.res = tonumber(state[3]) or 0
  if (tonumber(state[1]) or -1) ~= c.index then
    c.used = 0
  end
  local lapsed = redis.call('ZRANGEBYSCORE', c.z, '-inf', now)
  if #lapsed > 0 then
    for _, member in ipairs(lapsed) do
      c.res = c.res - tonumber(string.match(member, ':(%d+)$'))
    end
    if c.res < 0 then
      c.res = 0
    end
    redis.call('ZREMRANGEBYSCORE', c.z, '-inf', now)
    save(c)
  end
  return c
end

if ARGV[1] == 'reserve' then
  local counters = {}
  for i = 1, lines do
    local base = 3 + (i - 1) * 3
    local window = tonumber(ARGV[base + 1])
    local cap = tonumber(ARGV[base + 2])
    local amount = tonumber(ARGV[base + 3])
    local c = load(i, window)
    local left = cap - c.used - c.res
    if left < 0 then
      left = 0
    end
    -- Refusals: {0, line, reason (0 spent, 1 held, 2 too large), ms until the window ends}
    if amount > cap then
      return { 0, i - 1, 2, c.ends }
    end
    local take = amount
    if amount < 0 then
      take = left
    end
    local fits = (amount < 0 and left > 0) or (amount >= 0 and take <= left)
    if not fits then
      local spent = (amount >= 0 and c.used + amount > cap) or (amount < 0 and c.used >= cap)
      if spent then
        return { 0, i - 1, 0, c.ends }
      end
      return { 0, i - 1, 1, c.ends }
    end
    c.take = take
    counters[i] = c
  end
  local out = { 1 }
  for i = 1, lines do
    local c = counters[i]
    c.res = c.res + c.take
    save(c)
    redis.call('ZADD', c.z, now + hold, ARGV[2] .. ':' .. string.format('%d', c.take))
    redis.call('PEXPIRE', c.z, hold + 1000)
    out[i + 1] = c.take
  end
  return out
end

-- settle: {used after settling, per line}
local out = {}
for i = 1, lines do
  local base = 3 + (i - 1) * 3
  local window = tonumber(ARGV[base + 1])
  local reserved = tonumber(ARGV[base + 2])
  local used = tonumber(ARGV[base + 3])
  local c = load(i, window)
  if redis.call('ZREM', c.z, ARGV[2] .. ':' .. ARGV[base + 2]) == 1 then
    c.res = c.res - reserved
    if c.res < 0 then
      c.res = 0
    end
  end
  c.used = c.used + used
  save(c)
  out[i] = c.used
end
return out
