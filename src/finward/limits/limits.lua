-- finward rate limits: every check of one request, in one atomic step.
--
-- A transcription of finward/limits/algorithms.py (the reference; the contract tests run
-- the same expectations against both). Times are integer microseconds, exact in Lua's
-- doubles below 2^53. All checks are evaluated first, with reads only; the writes run only
-- when every check passes, so a refused request consumes nothing.
--
-- KEYS[i]  state of check i ("<prefix>:rl:<key>"), one Redis type per algorithm:
--            gcra: string (TAT)     sliding: list (one timestamp per cost unit)
--            fixed: hash {s=window start, n=count}     concurrency: zset member -> expiry
-- ARGV[1]  'a' acquire, 'p' peek (never writes), 'r' release (concurrency slots)
-- ARGV[2]  now in µs, or '' to use the Redis server's clock (TIME), so that replicas with
--          skewed clocks agree
-- ARGV[2+i] check i, one space-separated string (fewer arguments are cheaper to send):
--   'g cost burst interval_us period_us'                  gcra
--   's cost limit period_us'                              sliding window
--   'f cost limit period_us'                              fixed, aligned to the epoch
--   'c cost limit start end next_end'                     calendar: the caller's zoneinfo
--                      computed the window around its own clock, and the following one
--   'k cost limit lease_us member'                        concurrency; member = the rest
-- Returns {now, allowed_1, remaining_1, reset_1, retry_1, allowed_2, ...}, integers (µs).

local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end

local function int(x)  -- how numbers are stored: integral, never in exponent notation
  return string.format('%.0f', x)
end

local function ttl_ms(us)  -- a relative TTL, rounded up: independent of the clocks
  local ms = math.floor((us + 999) / 1000)
  if ms < 1 then return 1 end
  return ms
end

-- A read that treats a key holding another type (a rule whose algorithm changed under
-- the same name) as absent; the write that follows replaces it.
local function read(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then return nil, true end
  return reply, false
end

-- A check's algorithm, its numbers (cost first) and, for concurrency, the member.
local function parse(spec)
  local algorithm, rest, numbers = string.sub(spec, 1, 1), string.sub(spec, 3), {}
  local count = 5
  if algorithm == 'k' then count = 3 end
  for _ = 1, count do
    local number, tail = string.match(rest, '^(%d+) ?(.*)$')
    if not number then break end
    numbers[#numbers + 1] = tonumber(number)
    rest = tail
  end
  return algorithm, numbers, rest
end

if op == 'r' then
  for i = 1, #KEYS do
    local algorithm, _, member = parse(ARGV[2 + i])
    if algorithm == 'k' then redis.pcall('ZREM', KEYS[i], member) end
  end
  return {now}
end

-- Each evaluator returns allowed, remaining, reset, retry and, when allowed, the writes.

local function gcra(key, cost, burst, interval, period)
  local stored = read('GET', key)
  local base = now
  if stored then
    local tat = tonumber(stored)
    if tat and tat > now then base = tat end
  end
  local span = burst * interval
  local retry = period  -- a cost above the burst never passes
  if cost <= burst then
    local tat = base + cost * interval
    local wait = tat - span - now
    if wait <= 0 then
      return true, math.floor((span - (tat - now)) / interval), tat - now, 0, function()
        redis.call('SET', key, int(tat), 'PX', ttl_ms(tat - now))
      end
    end
    retry = wait
  end
  return false, math.max(0, math.floor((span - (base - now)) / interval)), base - now, retry
end

local function sliding(key, cost, limit, period)
  local n, wrong = read('LLEN', key)
  if wrong then n = 0 end
  local cutoff = now - period  -- a unit stamped at t counts while now < t + period
  local expired, last = 0, nil
  if n > 0 then
    last = tonumber(redis.call('LINDEX', key, -1))
    if last <= cutoff then
      expired, last = n, nil
    else
      -- Stamps never decrease: binary search for the first one still in the window.
      local lo, hi = 0, n - 1
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if tonumber(redis.call('LINDEX', key, mid)) <= cutoff then lo = mid + 1 else hi = mid end
      end
      expired = lo
    end
  end
  local used = n - expired
  if cost <= limit and used + cost <= limit then
    local stamp = now
    if last and last > now then stamp = last end  -- keep the list sorted
    return true, limit - used - cost, stamp + period - now, 0, function()
      if wrong or expired == n then
        redis.call('DEL', key)
      elseif expired > 0 then
        redis.call('LTRIM', key, expired, -1)
      end
      local batch = {}
      for _ = 1, math.min(cost, 1000) do batch[#batch + 1] = int(stamp) end
      local left = cost
      while left > 0 do  -- in chunks: unpack() has a stack limit
        local take = math.min(left, 1000)
        redis.call('RPUSH', key, unpack(batch, 1, take))
        left = left - take
      end
      redis.call('PEXPIRE', key, ttl_ms(stamp + period - now))
    end
  end
  local reset = 0
  if last then reset = last + period - now end
  local retry = period
  if cost <= limit then
    -- The oldest units leave first: wait for the one whose departure makes room.
    local need = used + cost - limit
    retry = tonumber(redis.call('LINDEX', key, expired + need - 1)) + period - now
  end
  return false, math.max(0, limit - used), reset, retry
end

local function fixed(key, cost, limit, start, stop)
  local stored, wrong = read('HMGET', key, 's', 'n')
  local count = 0
  if not wrong and stored[1] and tonumber(stored[1]) == start then
    count = tonumber(stored[2]) or 0
  end
  if cost <= limit and count + cost <= limit then
    return true, limit - count - cost, stop - now, 0, function()
      if wrong then redis.call('DEL', key) end
      redis.call('HSET', key, 's', int(start), 'n', int(count + cost))
      redis.call('PEXPIRE', key, ttl_ms(stop - now))
    end
  end
  local retry = stop - start
  if cost <= limit then retry = stop - now end
  local reset = 0
  if count > 0 then reset = stop - now end
  return false, math.max(0, limit - count), reset, retry
end

local function concurrency(key, cost, limit, lease, member)
  local live, wrong = read('ZRANGEBYSCORE', key, '(' .. int(now), '+inf', 'WITHSCORES')
  if wrong then live = {} end
  local used, others = 0, {}  -- others: {expiry, cost}, earliest first
  for j = 1, #live, 2 do
    if live[j] ~= member then  -- re-acquiring a held lease renews it
      local units = tonumber(string.match(live[j], '^(%d+):')) or 1
      used = used + units
      others[#others + 1] = {tonumber(live[j + 1]), units}
    end
  end
  local latest = nil
  if #others > 0 then latest = others[#others][1] end
  if cost <= limit and used + cost <= limit then
    local expiry = now + lease
    local top = expiry
    if latest and latest > top then top = latest end
    return true, limit - used - cost, top - now, 0, function()
      if wrong then redis.call('DEL', key) end
      redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now))
      redis.call('ZADD', key, int(expiry), member)
      redis.call('PEXPIRE', key, ttl_ms(top - now))
    end
  end
  local retry = lease
  if cost <= limit then
    local need, freed = used + cost - limit, 0
    for _, entry in ipairs(others) do
      freed = freed + entry[2]
      if freed >= need then
        retry = entry[1] - now
        break
      end
    end
  end
  local reset = 0
  if latest then reset = latest - now end
  return false, math.max(0, limit - used), reset, retry
end

local result, writes, all = {now}, {}, true
for i = 1, #KEYS do
  local algorithm, n, member = parse(ARGV[2 + i])
  local key, cost = KEYS[i], n[1]
  local allowed, remaining, reset, retry, write
  if algorithm == 'g' then
    allowed, remaining, reset, retry, write = gcra(key, cost, n[2], n[3], n[4])
  elseif algorithm == 's' then
    allowed, remaining, reset, retry, write = sliding(key, cost, n[2], n[3])
  elseif algorithm == 'f' then
    local start = math.floor(now / n[3]) * n[3]
    allowed, remaining, reset, retry, write = fixed(key, cost, n[2], start, start + n[3])
  elseif algorithm == 'c' then
    local start, stop, following = n[3], n[4], n[5]
    if now >= stop then
      if now >= following then
        -- The caller's clock is more than a whole window behind Redis's.
        return redis.error_reply('finward: clock skew larger than a calendar window')
      end
      start, stop = stop, following
    end
    allowed, remaining, reset, retry, write = fixed(key, cost, n[2], start, stop)
  elseif algorithm == 'k' then
    allowed, remaining, reset, retry, write = concurrency(key, cost, n[2], n[3], member)
  else
    return redis.error_reply('finward: unknown limit algorithm')
  end
  if allowed then
    result[#result + 1] = 1
    writes[#writes + 1] = write
  else
    result[#result + 1] = 0
    all = false
  end
  result[#result + 1] = remaining
  result[#result + 1] = reset
  result[#result + 1] = retry
end

if op == 'a' and all then
  for _, write in ipairs(writes) do write() end
end
return result
