-- wsgiauth: record in Apache's log phase the user a WSGI application authenticated itself.
--
-- wsgiauth.middleware.AuthMiddleware(..., emit_headers=True) adds two response headers to every authenticated
-- response: X-Remote-User (the user name) and X-Auth-Type (Basic or Digest). This log-phase hook copies them into
-- r.user and r.ap_auth_type, so that the access log's %u (and any module looking at the request at log time) sees
-- the user.
--
-- The log phase runs AFTER the response has been sent, so this hook alone cannot keep the headers from the client.
-- mod_headers removes them before they are sent, after saving their values in request notes that this hook reads:
--
--     LoadModule lua_module /usr/lib/apache2/modules/mod_lua.so      (and mod_headers)
--     <Location />
--         Header note X-Remote-User wsgiauth-user
--         Header note X-Auth-Type wsgiauth-auth-type
--         Header unset X-Remote-User
--         Header unset X-Auth-Type
--         LuaHookLog /path/to/reflect_user.lua reflect_user
--     </Location>
--
-- `wsgiauth apache-config` prints these lines with the exact path of this file. Without the two "Header unset"
-- lines the client receives the user name.

local MAX_LEN = 256

local function clean(value)
    if value == nil or value == "" or #value > MAX_LEN then
        return nil
    end
    -- Several values joined by a comma: keep the first (the application sends one).
    local first = value:match("^([^,]*)")
    if first == nil or first == "" then
        return nil
    end
    return first
end

-- The value saved by "Header note", else the response header itself (which is then removed, for modules that
-- run after this hook); only response data is read, never anything the client sent.
local function take(r, note, header)
    local value = r.notes[note]
    local direct = r.headers_out[header]
    if direct ~= nil then
        r.headers_out[header] = nil
    end
    if value == nil then
        value = direct
    end
    return clean(value)
end

function reflect_user(r)
    local user = take(r, "wsgiauth-user", "X-Remote-User")
    local auth_type = take(r, "wsgiauth-auth-type", "X-Auth-Type")
    if user ~= nil then
        r.user = user
        if auth_type ~= nil then
            r.ap_auth_type = auth_type
        end
    end
    return apache2.DECLINED
end
