#!/usr/bin/env escript
%% Differential oracle for test/otp-differential.test.ts: runs each case's supervision tree in
%% a real OTP supervisor and prints which workers were started and which were terminated by
%% their supervisor (shutdown), in order, and whether the root supervisor gave up.
%% Input: a file of terms {'case', Id, Tree, Events}. Tree: {sup, Name, Strategy, Intensity,
%% Period, Children} | {worker, Name, Restart}. Events: {crash, W} | {quit, W} | {fail, W, N}
%% (the next N starts of W fail).
-module(sup_diff).
-mode(compile).
-export([main/1, init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2, start_worker/1, start_sup/1]).

main([File]) ->
    {ok, Cases} = file:consult(File),
    %% Crash and supervisor reports would drown the trace on stdout.
    logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    ets:new(fails, [named_table, public]),
    ets:new(trace, [named_table, public, ordered_set]),
    lists:foreach(fun run_case/1, Cases),
    halt(0).

log(Entry) -> ets:insert(trace, {erlang:unique_integer([monotonic]), Entry}).

run_case({'case', Id, Tree, Events}) ->
    ets:delete_all_objects(fails),
    ets:delete_all_objects(trace),
    {ok, Root} = start_sup(Tree),
    GaveUp = run_events(Root, Events),
    io:format("case ~p~n", [Id]),
    [io:format("~s~n", [E]) || {_, E} <- ets:tab2list(trace)],
    case GaveUp of
        true -> io:format("gaveup~n");
        false ->
            exit(Root, shutdown),
            receive {'EXIT', Root, _} -> ok end
    end,
    io:format("end~n").

run_events(_Root, []) -> false;
run_events(Root, [E | Es]) ->
    event(E),
    settle(Root, 0, -1),
    case is_process_alive(Root) of
        true -> run_events(Root, Es);
        false -> receive {'EXIT', Root, _} -> true end
    end.

event({fail, Name, N}) -> ets:insert(fails, {Name, N});
event({Kind, Name}) ->
    case whereis(Name) of
        undefined -> ok;
        Pid ->
            Ref = monitor(process, Pid),
            catch gen_server:call(Pid, Kind),
            receive {'DOWN', Ref, _, _, _} -> ok end
    end.

%% Until the trace stops growing for 3 rounds in which every supervisor answered a call (so
%% every EXIT and try_again_restart cast queued before it was handled).
settle(_Root, Stable, _Size) when Stable >= 3 -> ok;
settle(Root, Stable, Size) ->
    timer:sleep(1),
    sync(Root),
    case ets:info(trace, size) of
        Size -> settle(Root, Stable + 1, Size);
        New -> settle(Root, 0, New)
    end.

sync(Sup) ->
    case catch supervisor:which_children(Sup) of
        Children when is_list(Children) ->
            [sync(P) || {_, P, supervisor, _} <- Children, is_pid(P)];
        _ -> ok
    end.

start_sup(Spec) -> supervisor:start_link(?MODULE, {sup, Spec}).
start_worker(Name) -> gen_server:start_link({local, Name}, ?MODULE, {worker, Name}, []).

init({sup, {sup, _Name, Strategy, Intensity, Period, Children}}) ->
    {ok, {#{strategy => Strategy, intensity => Intensity, period => Period}, [child(C) || C <- Children]}};
init({worker, Name}) ->
    process_flag(trap_exit, true),
    case ets:lookup(fails, Name) of
        [{Name, N}] when N > 0 ->
            ets:insert(fails, {Name, N - 1}),
            {stop, failed};
        _ ->
            log("start:" ++ atom_to_list(Name)),
            {ok, Name}
    end.

child({worker, Name, Restart}) ->
    #{id => Name, start => {?MODULE, start_worker, [Name]}, restart => Restart, shutdown => 5000, type => worker};
child({sup, Name, _, _, _, _} = S) ->
    #{id => Name, start => {?MODULE, start_sup, [S]}, restart => permanent, shutdown => infinity, type => supervisor}.

handle_call(crash, _From, S) -> {stop, crash, ok, S};
handle_call(quit, _From, S) -> {stop, normal, ok, S}.
handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

%% Only terminations the supervisor asked for: a crash or a normal exit ends the worker itself.
terminate(shutdown, Name) -> log("stop:" ++ atom_to_list(Name));
terminate(_, _) -> ok.
