-- wsgiauth: reflect the user an application authenticated into Apache's request record.
--
-- The WSGI middleware (wsgiauth.middleware.AuthMiddleware with emit_headers=True) adds two response headers to
-- every authenticated response: X-Remote-User (the user name) and X-Auth-Type (Basic or Digest). This hook, run in
-- the log phase, copies them into r.user and r.ap_auth_type, so that the access log's %u (and any module looking at
-- the request at log time) sees the user, and deletes them so the client never receives them.
--
-- Apache configuration (mod_lua must be loaded):
--     LuaHookLog /path/to/reflect_user.lua reflect_user
-- `wsgiauth apache-config` prints the exact path of this file.
--
-- Headers set by a proxied back end arrive in r.headers_out; headers set by an error document or a module may be in
-- r.err_headers_out: both tables are handled. Only the first value is used; an empty or overlong value is ignored.

local MAX_LEN = 256

local function take(r, name)
    local value = r.headers_out[name]
    if value ~= nil then
        r.headers_out[name] = nil
    end
    local err_value = r.err_headers_out[name]
    if err_value ~= nil then
        r.err_headers_out[name] = nil
        if value == nil then
            value = err_value
        end
    end
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

function reflect_user(r)
    local user = take(r, "X-Remote-User")
    local auth_type = take(r, "X-Auth-Type")
    if user ~= nil then
        r.user = user
        if auth_type ~= nil then
            r.ap_auth_type = auth_type
        end
    end
    return apache2.DECLINED
end
