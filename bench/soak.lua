-- wrk script: round-robin over the tokens in $SOAK_TOKENS, so the token cache sees many tokens.
local tokens = {}
for line in io.lines(os.getenv("SOAK_TOKENS")) do tokens[#tokens + 1] = line end
local index = 0
request = function()
  index = index % #tokens + 1
  return wrk.format("GET", "/api/v1/tables?limit=10", { ["Authorization"] = "Bearer " .. tokens[index] })
end
