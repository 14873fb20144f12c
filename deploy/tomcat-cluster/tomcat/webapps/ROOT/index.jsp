<%-- The walk-through's page: counts requests in the session and shows which Tomcat
     served it. The counter is an Integer, which every MSM transcoder handles.
--%><%@ page contentType="text/plain; charset=UTF-8" session="true" %><%
    Integer count = (Integer) session.getAttribute("count");
    count = count == null ? 1 : count + 1;
    session.setAttribute("count", count);
%>session=<%= session.getId() %>
count=<%= count %>
node=<%= System.getProperty("jvmRoute") %>
